//! Reloading settings without a restart.
//!
//! Operators change a running server's configuration (certificates, users and their
//! entitlements, ...) by editing the files and sending `SIGHUP`, or with
//! `POST /admin/reload`. Both end in [`Reloader::reload`]: the configuration is resolved
//! again exactly as at start-up (file, then `TICKWIRE_*` environment, then the original
//! command-line flags), validated, and handed to every registered hook in registration
//! order. A configuration that does not validate changes nothing: the running settings stay
//! and the error is reported (logged, and returned to the admin request).
//!
//! Each subsystem that can take new settings registers one hook when it starts; a hook
//! applies what it owns and says what changed, or refuses. Settings without a hook need a
//! restart; a hook may say so in its outcome.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::ServerConfig;

/// Re-reads the configuration as it was resolved at start-up.
pub type ConfigSource = Box<dyn Fn() -> anyhow::Result<ServerConfig> + Send + Sync>;

/// One subsystem's reaction to a new configuration: `Ok(summary)` of what changed, or
/// `Err(why)` when it refused (it then keeps its old settings).
pub type ReloadHook = Box<dyn Fn(&ServerConfig) -> Result<String, String> + Send + Sync>;

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Whether the configuration resolved and every hook accepted it.
    pub ok: bool,
    /// The configuration error, when the new configuration could not be used at all.
    pub error: Option<String>,
    /// Per hook: its name and outcome.
    pub hooks: Vec<HookOutcome>,
}

/// One hook's outcome in a [`ReloadReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookOutcome {
    pub name: &'static str,
    pub ok: bool,
    pub message: String,
}

/// See the module documentation.
pub struct Reloader {
    source: ConfigSource,
    hooks: Mutex<Vec<(&'static str, ReloadHook)>>,
}

impl Reloader {
    /// A reloader that re-resolves the configuration with `source`.
    pub fn new(source: ConfigSource) -> Arc<Reloader> {
        Arc::new(Reloader {
            source,
            hooks: Mutex::new(Vec::new()),
        })
    }

    /// A reloader for servers started without a configuration source (tests, embedding):
    /// every reload reports that there is nothing to reload from.
    pub fn fixed() -> Arc<Reloader> {
        Reloader::new(Box::new(|| {
            anyhow::bail!("this server was started without a configuration source")
        }))
    }

    /// Registers `hook` under `name` (used in logs and reports).
    pub fn register(&self, name: &'static str, hook: ReloadHook) {
        self.hooks.lock().push((name, hook));
    }

    /// Resolves the configuration again and hands it to every hook. Never panics; see
    /// [`ReloadReport`].
    pub fn reload(&self) -> ReloadReport {
        let config = match (self.source)() {
            Ok(c) => c,
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(error = %error, "reload refused: configuration invalid; keeping the running settings");
                return ReloadReport {
                    ok: false,
                    error: Some(error),
                    hooks: Vec::new(),
                };
            }
        };
        let hooks = self.hooks.lock();
        let mut outcomes = Vec::with_capacity(hooks.len());
        for (name, hook) in hooks.iter() {
            let (ok, message) = match hook(&config) {
                Ok(m) => (true, m),
                Err(m) => (false, m),
            };
            if ok {
                tracing::info!(hook = name, outcome = %message, "reloaded");
            } else {
                tracing::error!(hook = name, error = %message, "reload refused by subsystem");
            }
            outcomes.push(HookOutcome { name, ok, message });
        }
        ReloadReport {
            ok: outcomes.iter().all(|o| o.ok),
            error: None,
            hooks: outcomes,
        }
    }

    /// Reloads on every `SIGHUP`, forever. Spawn it once on the server's runtime.
    pub async fn listen_for_sighup(self: Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload only through POST /admin/reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            // Hooks may do file I/O (certificates); keep it off the event loop.
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn hooks_run_in_order_and_refusals_are_reported() {
        let calls = Arc::new(AtomicUsize::new(0));
        let r = Reloader::new(Box::new(|| Ok(ServerConfig::default())));
        let c = calls.clone();
        r.register(
            "first",
            Box::new(move |_| {
                assert_eq!(c.fetch_add(1, Ordering::SeqCst), 0);
                Ok("fine".into())
            }),
        );
        let c = calls.clone();
        r.register(
            "second",
            Box::new(move |_| {
                assert_eq!(c.fetch_add(1, Ordering::SeqCst), 1);
                Err("no".into())
            }),
        );
        let report = r.reload();
        assert!(!report.ok);
        assert_eq!(report.hooks.len(), 2);
        assert!(report.hooks[0].ok && !report.hooks[1].ok);
        assert_eq!(report.hooks[1].message, "no");
    }

    #[test]
    fn an_invalid_configuration_reaches_no_hook() {
        let r = Reloader::new(Box::new(|| anyhow::bail!("`workers`: 0 is not in 1..=64")));
        r.register("never", Box::new(|_| panic!("must not run")));
        let report = r.reload();
        assert!(!report.ok);
        assert!(report.error.unwrap().contains("workers"));
        assert!(report.hooks.is_empty());
    }
}
