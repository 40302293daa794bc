//! `[hardware]`: a measured profile replacing the datasheet formulas.

use crate::profile::HardwareProfile;
use crate::scenario::check::Check;
use crate::scenario::{RawHardware, RawScenario, ScenarioError};
use std::path::Path;

pub(super) fn validate_hardware(
    h: &RawHardware,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<Option<HardwareProfile>, ScenarioError> {
    let src = c.src;
    Ok(match &h.profile {
        Some(p) => {
            let full = src.file.parent().unwrap_or(Path::new(".")).join(p);
            let profile = HardwareProfile::load(&full).map_err(|e| src.error("hardware.profile", e))?;
            let abs = std::fs::canonicalize(&full).unwrap_or(full);
            resolved.hardware.profile = Some(abs.to_string_lossy().into_owned());
            Some(profile)
        }
        None => None,
    })
}
