//! The synthetic verifiable task: prompts are random token ids; the verifier rewards the share of response tokens
//! that are even ids. A fresh model scores about 0.5; a learning one climbs towards 1.

use rand::RngExt;
use rlsim_sim::rng::RngStreams;

/// Prompt tokens of prompt group `group` (a pure function of seed and group), avoiding the EOS id.
pub fn prompt_tokens(streams: &RngStreams, group: u64, len: u32, vocab: u32, eos: u32) -> Vec<u32> {
    let mut rng = streams.indexed("exec/prompt", group);
    (0..len)
        .map(|_| loop {
            let t = rng.random_range(0..vocab);
            if t != eos {
                break t;
            }
        })
        .collect()
}

/// The verifier: share of response tokens with an even id (0 for an empty response).
pub fn reward(task: &str, response: &[u32]) -> f32 {
    debug_assert_eq!(task, "even");
    if response.is_empty() {
        return 0.0;
    }
    response.iter().filter(|t| *t % 2 == 0).count() as f32 / response.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_reproducible_and_reward_counts_even_ids() {
        let s = RngStreams::new(3);
        let a = prompt_tokens(&s, 7, 12, 16, 0);
        assert_eq!(a, prompt_tokens(&s, 7, 12, 16, 0));
        assert_ne!(a, prompt_tokens(&s, 8, 12, 16, 0));
        assert!(a.iter().all(|&t| t != 0 && t < 16));
        assert_eq!(reward("even", &[2, 4, 5, 7]), 0.5);
        assert_eq!(reward("even", &[]), 0.0);
    }
}
