//! The `--demo` API: a small orders API that fails twice, so a first run shows retries.

use std::io;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Reply, Server};

/// Number of orders the demo API holds.
pub const DEMO_RECORDS: usize = 237;

/// The demo: a paginated orders API (`page`, `per_page`, at most 100 per page) whose
/// second page fails once with 503 and whose third is rate-limited once with a 429 and
/// `Retry-After: 1`, so a first run shows both kinds of recovery.
pub fn demo() -> io::Result<Server> {
    let failed = Mutex::new(std::collections::HashSet::new());
    Server::start(move |req| {
        let page: usize = req
            .param("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let per_page: usize = req
            .param("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100)
            .clamp(1, 100);
        if failed.lock().unwrap().insert(page) {
            match page {
                2 => {
                    return Reply::json(&json!({"error": "upstream unavailable"})).with_status(503);
                }
                3 => {
                    return Reply::json(&json!({"error": "slow down"}))
                        .with_status(429)
                        .header("retry-after", "1");
                }
                _ => {}
            }
        }
        let start = (page - 1) * per_page;
        let orders: Vec<Value> = (start..(start + per_page).min(DEMO_RECORDS))
            .map(demo_order)
            .collect();
        Reply::json(&json!({
            "data": orders,
            "page": page,
            "per_page": per_page,
            "total": DEMO_RECORDS,
            "has_more": start + per_page < DEMO_RECORDS,
        }))
    })
}

fn demo_order(i: usize) -> Value {
    let status = ["paid", "shipped", "refunded"][i % 3];
    let names = [
        "Ada Lovelace",
        "Grace \"Amazing\" Hopper",
        "Zoë Ångström",
        "李雷",
        "O'Brien, Pat",
    ];
    let mut order = json!({
        "id": 1000 + i,
        "status": status,
        "total": format!("{}.{:02}", 10 + i * 7 % 490, i * 13 % 100).parse::<Value>().unwrap_or(Value::Null),
        "customer": {"name": names[i % names.len()], "email": format!("c{i}@example.test")},
        "items": (0..=(i % 3)).map(|k| format!("sku-{}", (i + k) % 17)).collect::<Vec<_>>(),
        "note": if i % 4 == 0 { Value::Null } else { Value::String(format!("gift wrap, {} boxes\nhandle with care", i % 5)) },
    });
    if i >= 200 {
        order["coupon"] = json!(format!("WINTER{}", i % 10));
    }
    order
}
