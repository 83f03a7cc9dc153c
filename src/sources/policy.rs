//! When a cached token is served, refreshed ahead, or minted anew: the one rule both
//! token caches follow (the agent's, `agent/tokens.rs`; the file's, [`super::cache`]).

/// Whether a cached token is served, served while a new one is minted, or minted
/// anew first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Well within its life: served as is.
    Serve,
    /// Served, and a new one should be minted now, ahead of its expiry (the agent
    /// does it in the background; a single process has no background).
    ServeAndRefresh,
    /// Too close to its expiry (or past it): never served.
    Stale,
}

/// How long before its expiry a token is no longer served: a quarter of its life,
/// at most 5 minutes (a pull that starts with it must not see it expire).
pub fn stale_margin(lifetime: u64) -> u64 {
    (lifetime / 4).min(300)
}

/// How long before its expiry the agent mints the next one: half of its life, at
/// most 15 minutes.
pub fn refresh_margin(lifetime: u64) -> u64 {
    (lifetime / 2).min(900)
}

/// How a token minted at `minted_at` that expires at `expires_at` (Unix seconds)
/// stands at `now`. A token without an expiry is never cached: each `get` mints.
pub fn freshness(minted_at: u64, expires_at: Option<u64>, now: u64) -> Freshness {
    let Some(expires_at) = expires_at else {
        return Freshness::Stale;
    };
    let lifetime = expires_at.saturating_sub(minted_at);
    let left = expires_at.saturating_sub(now);
    if now < minted_at || left <= stale_margin(lifetime) {
        Freshness::Stale
    } else if left <= refresh_margin(lifetime) {
        Freshness::ServeAndRefresh
    } else {
        Freshness::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_served_then_refreshed_ahead_then_never_served_stale() {
        // A 12-hour ECR token.
        let (t0, life) = (1_000_000, 12 * 3600);
        assert_eq!(freshness(t0, Some(t0 + life), t0), Freshness::Serve);
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life - 901),
            Freshness::Serve
        );
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life - 900),
            Freshness::ServeAndRefresh
        );
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life - 300),
            Freshness::Stale
        );
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life + 5),
            Freshness::Stale
        );
        // An 8-second token: stale in its last 2 s, refreshed from its 4th.
        assert_eq!(freshness(t0, Some(t0 + 8), t0 + 3), Freshness::Serve);
        assert_eq!(
            freshness(t0, Some(t0 + 8), t0 + 4),
            Freshness::ServeAndRefresh
        );
        assert_eq!(freshness(t0, Some(t0 + 8), t0 + 6), Freshness::Stale);
        // No expiry, or a clock gone backwards: minted anew.
        assert_eq!(freshness(t0, None, t0), Freshness::Stale);
        assert_eq!(freshness(t0, Some(t0 + life), t0 - 10), Freshness::Stale);
    }
}
