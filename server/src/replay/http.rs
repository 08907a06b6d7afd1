//! HTTP replay for notebooks and scripts.
//!
//! * `GET /datasets`: every dataset with adapter, venue, symbols, time range (ns and RFC
//!   3339), size, whether it is damaged, and why it cannot be read if so.
//! * `GET /replay?dataset=NAME[&from=T][&to=T][&symbols=A,B][&speed=S]`: the dataset's
//!   normalized events as NDJSON, one JSON object per line exactly as `tickwire inspect`
//!   prints them (`snapshot`, `delta`, `trade`, ...; `ts` the event time, `recv_ts` the
//!   recorded receive time), at full speed unless `speed` is given. The body is a chunked
//!   stream fed through a small bounded channel by a task on the replay threads, so a slow
//!   reader slows the replay down instead of making the server buffer it. Errors before
//!   the stream starts are `400`/`404`/`429` with `{"error":CODE,"message":...}`.

// The error side of request preparation is the HTTP response itself, built once per
// request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use tickwire_engine::domain::{Nanos, SymbolId};
use tickwire_feeds::replay::{
    parse_time, timer::sleep_until, LocalBooks, ReplayClock, ReplaySource, Speed, StepError,
};
use tickwire_feeds::venues::{Decoded, SymbolRegistry};

use super::service::{self, ReplayService};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/datasets", web::get().to(datasets))
        .route("/replay", web::get().to(replay));
}

fn error(status: actix_web::http::StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": code, "message": message}))
}

fn bad(message: String) -> HttpResponse {
    error(
        actix_web::http::StatusCode::BAD_REQUEST,
        "bad_request",
        message,
    )
}

async fn datasets() -> HttpResponse {
    let Some(s) = service::get() else {
        return HttpResponse::Ok().json(Vec::<()>::new());
    };
    // Learning a dataset's instruments may read the start of its recording once.
    let list = web::block(move || s.catalog.list()).await;
    match list {
        Ok(l) => HttpResponse::Ok().json(l),
        Err(e) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        ),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    dataset: Option<String>,
    from: Option<String>,
    to: Option<String>,
    symbols: Option<String>,
    speed: Option<String>,
}

async fn replay(q: Result<web::Query<Query>, actix_web::Error>) -> HttpResponse {
    let q = match q {
        Ok(q) => q.into_inner(),
        Err(e) => {
            return bad(format!(
                "{e}; parameters are dataset, from, to, symbols, speed"
            ))
        }
    };
    let Some(svc) = service::get() else {
        return error(
            actix_web::http::StatusCode::NOT_FOUND,
            "unknown_dataset",
            "replays are not enabled".into(),
        );
    };
    match prepare(&svc, q) {
        Ok(plan) => stream(svc, plan),
        Err(resp) => resp,
    }
}

struct Plan {
    source: ReplaySource,
    wanted: Vec<bool>,
    from: Option<i64>,
    to: i64,
    speed: Speed,
    permit: super::limits::Permit,
}

fn prepare(svc: &ReplayService, q: Query) -> Result<Plan, HttpResponse> {
    use actix_web::http::StatusCode;
    let name = q
        .dataset
        .ok_or_else(|| bad("missing parameter dataset (see GET /datasets)".into()))?;
    let ds = svc.catalog.get(&name).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "unknown_dataset",
            format!("unknown dataset {name:?}; see GET /datasets"),
        )
    })?;
    let unavailable = |e: String| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dataset_unavailable",
            format!("dataset {name:?} cannot be read: {e}"),
        )
    };
    let reader = ds.reader.as_ref().map_err(|e| unavailable(e.clone()))?;
    let instruments = ds.instruments().map_err(unavailable)?;
    let (first, last) = reader
        .time_range()
        .ok_or_else(|| unavailable("no records".into()))?;
    let time = |v: &Option<String>, k: &str| -> Result<Option<i64>, HttpResponse> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => parse_time(s)
                .map(Some)
                .map_err(|e| bad(format!("{k}: {e}"))),
        }
    };
    let (from, to) = (time(&q.from, "from")?, time(&q.to, "to")?);
    let (lo, hi) = (from.unwrap_or(first), to.unwrap_or(last));
    let range = |m: String| error(StatusCode::BAD_REQUEST, "bad_range", m);
    if lo > hi {
        return Err(range(format!("from is after to ({lo} > {hi})")));
    }
    if lo > last || hi < first {
        return Err(range(format!(
            "{lo} to {hi} is outside the dataset ({first} to {last})"
        )));
    }
    let speed = match q.speed.as_deref() {
        None | Some("") => Speed::Max,
        Some(s) => Speed::parse(s).map_err(bad)?,
    };
    let source = ReplaySource::with_instruments(vec![reader.clone()], vec![(*instruments).clone()])
        .map_err(|e| unavailable(e.to_string()))?;
    let wanted = match q.symbols.as_deref().filter(|s| !s.is_empty()) {
        None => vec![true; source.instruments().len()],
        Some(list) => {
            let mut w = vec![false; source.instruments().len()];
            let mut unknown = Vec::new();
            for s in list.split(',') {
                match source.lookup(s) {
                    Some(id) => w[id.index()] = true,
                    None => unknown.push(s.to_string()),
                }
            }
            if !unknown.is_empty() {
                return Err(HttpResponse::BadRequest().json(serde_json::json!({
                    "error": "unknown_symbol",
                    "message": format!("not in dataset {name:?}: {}", unknown.join(", ")),
                    "symbols": unknown,
                })));
            }
            w
        }
    };
    let permit = svc
        .limits
        .acquire("anonymous")
        .map_err(|m| error(StatusCode::TOO_MANY_REQUESTS, "limit_exceeded", m))?;
    Ok(Plan {
        source,
        wanted,
        from,
        to: hi,
        speed,
        permit,
    })
}

const CHUNK: usize = 64 << 10;

fn stream(svc: std::sync::Arc<ReplayService>, plan: Plan) -> HttpResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let threads = svc.threads();
    // The decoding runs on a replay thread, not on this server worker.
    threads.feed.spawn(async move {
        if let Err(e) = produce(plan, tx).await {
            tracing::debug!(error = %e, "HTTP replay ended early");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body)
}

async fn produce(mut plan: Plan, tx: tokio::sync::mpsc::Sender<Bytes>) -> Result<(), String> {
    let _permit = plan.permit;
    let src = &mut plan.source;
    let registry = SymbolRegistry::fixed("replay", src.instruments().to_vec());
    let mut books = LocalBooks::new(src.instruments().len());
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    let send = |buf: &mut Vec<u8>| {
        let chunk = Bytes::from(std::mem::replace(buf, Vec::with_capacity(CHUNK + 4096)));
        let tx = tx.clone();
        async move {
            tx.send(chunk)
                .await
                .map_err(|_| "client went away".to_string())
        }
    };
    if let Some(from) = plan.from {
        while let Some(ts) = src.peek_ts() {
            if ts >= from && ts != i64::MIN {
                break;
            }
            let Some(step) = src.step(None) else { break };
            for d in step.decoded {
                if let Decoded::Event(ev) = d {
                    books.apply(ev);
                }
            }
        }
        for i in 0..plan.wanted.len() {
            let id = SymbolId(i as u32);
            if let (true, Some(snap)) =
                (plan.wanted[i], books.snapshot(id, Nanos(from), Nanos(from)))
            {
                let d = Decoded::Event(snap);
                tickwire_feeds::inspect::write_item(
                    &mut buf,
                    &registry,
                    &tickwire_feeds::inspect::ReplayItem::Decoded {
                        file: 0,
                        line: 0,
                        decoded: &d,
                        book: None,
                    },
                    None,
                );
                buf.push(b'\n');
            }
        }
    }
    let mut clock = ReplayClock::new(plan.speed);
    let mut record = 0usize;
    while let Some(ts) = src.peek_ts() {
        if ts > plan.to {
            break;
        }
        if let Some(deadline) = clock.deadline(ts).filter(|_| ts != i64::MIN) {
            if deadline > Instant::now() {
                if !buf.is_empty() {
                    send(&mut buf).await?;
                }
                sleep_until(deadline).await;
            }
        }
        let Some(step) = src.step(None) else { break };
        record += 1;
        for d in step.decoded {
            let symbol = match d {
                Decoded::Event(ev) => {
                    books.apply(ev);
                    ev.meta().symbol
                }
                Decoded::Quote(q) => q.meta.symbol,
                Decoded::Resync { symbol, .. } => *symbol,
            };
            if !plan.wanted[symbol.index()] {
                continue;
            }
            tickwire_feeds::inspect::write_item(
                &mut buf,
                &registry,
                &tickwire_feeds::inspect::ReplayItem::Decoded {
                    file: step.source,
                    line: record,
                    decoded: d,
                    book: None,
                },
                None,
            );
            buf.push(b'\n');
        }
        if let Some(StepError::Damaged { error, .. }) = &step.error {
            let line = serde_json::json!({"type":"error","line":record,"error":format!("damaged recording: {error}")});
            buf.extend_from_slice(line.to_string().as_bytes());
            buf.push(b'\n');
        }
        if buf.len() >= CHUNK {
            send(&mut buf).await?;
        }
    }
    if !buf.is_empty() {
        send(&mut buf).await?;
    }
    Ok(())
}
