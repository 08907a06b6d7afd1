//! The upgrade admission and the ticket endpoint over arbitrary request targets and
//! headers: the ticket parser, the query parser, the origin policy, credentials (API keys
//! and JWTs) and the admin guard. Input: the first line is the request target, each further
//! line `Name: value` a header; `{T}` in the target is replaced by a freshly issued ticket
//! so the success path is reached too. Nothing may panic, and whatever is admitted must be
//! a ticket we issued.
#![no_main]

use std::sync::{Arc, OnceLock};

use actix_http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use tickwire_server::config::FileConfig;
use tickwire_server::metrics::Metrics;
use tickwire_server::security::settings::UserSection;
use tickwire_server::security::tickets::{parse_ticket, ticket_from_query};
use tickwire_server::security::users::KeyDigest;
use tickwire_server::security::{Security, UpgradeRequest};

const KEY: &str = "fuzz-key-0123456789abcdef0123456789abcdef";

fn security() -> &'static Arc<Security> {
    static S: OnceLock<Arc<Security>> = OnceLock::new();
    S.get_or_init(|| {
        let digest: String = KeyDigest::of(KEY)
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut file = FileConfig::default();
        file.auth.enabled = true;
        file.auth.jwt_secret = "fuzz-secret-for-hs256-tokens-32-bytes".into();
        file.auth.admin_key_sha256 = digest.clone();
        file.auth.users = vec![UserSection {
            name: "fuzz".into(),
            key_sha256: digest,
            symbols: vec!["SYM00*".into()],
            ..UserSection::default()
        }];
        file.origin.allowed = vec![
            "https://app.example.com".into(),
            "https://*.example.org".into(),
            "http://localhost:*".into(),
        ];
        file.validate("fuzz").expect("fuzz configuration");
        Security::new(
            file.to_server_config().security,
            Arc::new(Metrics::default()),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sec = security();
    let mut lines = text.split('\n');
    let raw_target = lines.next().unwrap_or_default();
    let _ = parse_ticket(raw_target);
    let _ = ticket_from_query(raw_target);
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    let peer = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 4000)));
    let target = if raw_target.contains("{T}") {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap(),
        );
        let (_, body) = sec.ticket_request(&h, peer);
        let t = body["ticket"].as_str().unwrap_or_default().to_string();
        raw_target.replace("{T}", &t)
    } else {
        raw_target.to_string()
    };
    let _ = sec.ticket_request(&headers, peer);
    let _ = sec.authorize_admin(&headers, peer);
    match sec.admit(&UpgradeRequest {
        target: &target,
        headers: &headers,
        peer,
    }) {
        Ok(admission) => {
            assert_eq!(admission.user(), "fuzz");
            assert!(
                raw_target.contains("{T}"),
                "admitted without an issued ticket: {target:?}"
            );
        }
        Err(refusal) => {
            let _ = refusal.body();
            assert!(matches!(refusal.status().as_u16(), 401 | 403 | 429 | 503));
        }
    }
});
