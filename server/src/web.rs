//! The trading UI and the JavaScript client library, embedded in the binary.
//!
//! The files live in `server/web/` and are compiled in with `include_str!`, so the server
//! needs no asset directory or build step at run time. `Cache-Control: no-cache` makes a
//! browser revalidate after an upgrade instead of mixing old and new files.

use actix_web::{web, HttpResponse};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const CLIENT_JS: &str = include_str!("../web/tickwire.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// Registers `/`, `/app.js`, `/tickwire.js` and `/style.css`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
    )
    .route(
        "/app.js",
        web::get().to(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
    )
    .route(
        "/tickwire.js",
        web::get().to(|| async { asset(CLIENT_JS, "text/javascript; charset=utf-8") }),
    )
    .route(
        "/style.css",
        web::get().to(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
    );
}
