//! The JSON Schema of the scenario format, generated from the raw types.

use super::RawScenario;

/// The JSON Schema of the scenario format (for editors: completion and checking of scenario files).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawScenario)).expect("a schema always serialises")
}
