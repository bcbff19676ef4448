//! Panics on demand, for the supervision tests. Only a build with the `fault-injection`
//! feature (off by default, never in a release) has them; without it [`hit`] is empty.
//!
//! `CDRFLOW_INJECT_PANIC` lists points as `point@N` (panic at the point's N-th hit, once)
//! or `point@N+` (at every hit from the N-th on), separated by commas, e.g.
//! `committer@3,validator@1+`. The points are the actors' names.

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    struct Plan {
        /// Point → (first hit that panics, every hit from it on).
        at: HashMap<String, (u64, bool)>,
        hits: Mutex<HashMap<&'static str, u64>>,
    }

    fn parse(spec: &str) -> HashMap<String, (u64, bool)> {
        spec.split(',')
            .filter_map(|item| {
                let (point, n) = item.trim().split_once('@')?;
                let (n, repeat) = match n.strip_suffix('+') {
                    Some(n) => (n, true),
                    None => (n, false),
                };
                Some((point.to_string(), (n.parse().ok()?, repeat)))
            })
            .collect()
    }

    fn plan() -> &'static Plan {
        static PLAN: OnceLock<Plan> = OnceLock::new();
        PLAN.get_or_init(|| Plan {
            at: parse(&std::env::var("CDRFLOW_INJECT_PANIC").unwrap_or_default()),
            hits: Mutex::new(HashMap::new()),
        })
    }

    pub fn hit(point: &'static str) {
        let plan = plan();
        let Some(&(at, repeat)) = plan.at.get(point) else {
            return;
        };
        let n = {
            let mut hits = plan.hits.lock().unwrap_or_else(|p| p.into_inner());
            let n = hits.entry(point).or_default();
            *n += 1;
            *n
        };
        if n == at || (repeat && n > at) {
            panic!("fault injected at {point}, hit {n}");
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_plan_names_each_point_its_hit_and_whether_it_repeats() {
            let plan = super::parse("committer@3, validator@1+,bad,source@x");
            assert_eq!(plan.get("committer"), Some(&(3, false)));
            assert_eq!(plan.get("validator"), Some(&(1, true)));
            assert_eq!(plan.len(), 2);
        }
    }
}

/// A point where a test build may be told to panic.
#[cfg(feature = "fault-injection")]
pub use enabled::hit;

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hit(_point: &'static str) {}
