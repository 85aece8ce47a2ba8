//! A paginated JSON API that does no work per request, so a benchmark measures the client.
//!
//! At start-up it generates `--records` realistic records (nested objects, arrays, nulls,
//! unicode, quoted strings with commas and newlines, big integers, exponents, keys that
//! only some records have), renders every page of `--per-page` records as a complete HTTP
//! response `{"data":[...],"has_more":...}` with an `X-Total-Count` header, and then
//! answers `GET /items?page=N` on
//! 127.0.0.1 with keep-alive by writing the ready bytes. `--latency-ms` holds every answer
//! back by a fixed time, to imitate a far-away server.
//!
//! Once listening it prints one line on stdout: `port pages bytes`, where `bytes` is the
//! sum of the page bodies, so a caller can check that a download was complete.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

struct Options {
    records: u64,
    per_page: u64,
    latency: Duration,
}

fn main() -> io::Result<()> {
    let options = parse_args()?;
    let pages = Arc::new(render(&options));
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let bytes: usize = pages.bodies.iter().map(|r| r.len() - r.header_len).sum();
    println!(
        "{} {} {}",
        listener.local_addr()?.port(),
        pages.bodies.len(),
        bytes
    );
    io::stdout().flush()?;
    for stream in listener.incoming() {
        let stream = stream?;
        let pages = Arc::clone(&pages);
        let latency = options.latency;
        std::thread::spawn(move || {
            // A client closing its connection ends the thread; nothing to report.
            let _ = serve(stream, &pages, latency);
        });
    }
    Ok(())
}

fn parse_args() -> io::Result<Options> {
    let mut options = Options {
        records: 10_000,
        per_page: 100,
        latency: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| io::Error::other(format!("{flag} needs a value")))?;
        let number: u64 = value
            .parse()
            .map_err(|_| io::Error::other(format!("{flag}: not a number: {value}")))?;
        match flag.as_str() {
            "--records" => options.records = number,
            "--per-page" => options.per_page = number.max(1),
            "--latency-ms" => options.latency = Duration::from_millis(number),
            _ => return Err(io::Error::other(format!("unknown flag {flag}"))),
        }
    }
    Ok(options)
}

/// A ready HTTP response; `header_len` bytes of head precede the body.
struct Rendered {
    bytes: Vec<u8>,
    header_len: usize,
}

impl Rendered {
    /// `total` is announced in `X-Total-Count`, as many APIs do: it lets a client know
    /// every page in advance and fetch several at once.
    fn new(body: &[u8], total: u64) -> Self {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-total-count: {total}\r\n\r\n",
            body.len()
        );
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body);
        Rendered {
            bytes,
            header_len: head.len(),
        }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }
}

struct Pages {
    bodies: Vec<Rendered>,
    /// The answer past the last page.
    empty: Rendered,
}

fn render(options: &Options) -> Pages {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut bodies = Vec::new();
    let mut id = 1;
    while id <= options.records {
        let last = (id + options.per_page - 1).min(options.records);
        let mut body = String::from("{\"data\":[");
        for n in id..=last {
            if n > id {
                body.push(',');
            }
            record(n, &mut rng, &mut body);
        }
        body.push_str("],\"has_more\":");
        body.push_str(if last < options.records {
            "true"
        } else {
            "false"
        });
        body.push('}');
        bodies.push(Rendered::new(body.as_bytes(), options.records));
        id = last + 1;
    }
    Pages {
        bodies,
        empty: Rendered::new(br#"{"data":[],"has_more":false}"#, options.records),
    }
}

/// A small deterministic generator (xorshift64*), so every run serves the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ada", "Zoë", "José", "Łukasz", "Chloé", "Søren", "Mei", "Ngozi", "Åsa", "Dmitri", "Ana",
    "Björk",
];
const LAST: &[&str] = &[
    "O'Brien",
    "Núñez",
    "Müller",
    "Kowalski",
    "李",
    "García",
    "Smith",
    "Østergaard",
];
const CITIES: &[&str] = &[
    "Kraków",
    "São Paulo",
    "Zürich",
    "東京",
    "Reykjavík",
    "New York",
    "Montréal",
    "Cairo",
];
const TAGS: &[&str] = &["vip", "new", "b2b", "churn-risk", "beta", "eu", "wholesale"];
const NOTES: &[&str] = &[
    r#"Called twice, no answer"#,
    r#"Prefers \"express\" shipping, weekends only"#,
    r#"Line one\nLine two, with a comma"#,
    r#"Emoji ok 🚀 — and a tab\there"#,
];

/// Appends one record as compact JSON, roughly 280 bytes like a typical business API.
fn record(id: u64, rng: &mut Rng, out: &mut String) {
    use std::fmt::Write as _;
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let cents = rng.below(10_000_000);
    let _ = write!(
        out,
        r#"{{"id":{id},"name":"{first} {last}","email":"user{id}@example.com","active":{},"balance":{}.{:02},"#,
        rng.below(3) > 0,
        cents / 100,
        cents % 100,
    );
    let _ = write!(
        out,
        r#""account_no":{}{:019},"score":{}e-{},"#,
        1 + rng.below(9),
        rng.next() % 10_000_000_000_000_000_000,
        1 + rng.below(999),
        1 + rng.below(9),
    );
    let _ = write!(
        out,
        r#""address":{{"street":"{} \"Old\" Mill Rd, Apt {}","city":"{}","zip":{},"geo":{{"lat":{}.{:04},"lng":-{}.{:04}}}}},"#,
        1 + rng.below(999),
        rng.below(50),
        rng.pick(CITIES),
        if rng.below(4) == 0 {
            "null".to_string()
        } else {
            format!("\"{:05}\"", rng.below(100_000))
        },
        rng.below(90),
        rng.below(10_000),
        rng.below(180),
        rng.below(10_000),
    );
    let tags = rng.below(4);
    out.push_str(r#""tags":["#);
    for t in 0..tags {
        if t > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\"", rng.pick(TAGS));
    }
    out.push_str("],");
    match rng.below(3) {
        0 => out.push_str(r#""notes":null"#),
        _ => {
            let _ = write!(out, r#""notes":"{}""#, rng.pick(NOTES));
        }
    }
    if id.is_multiple_of(7) {
        let _ = write!(
            out,
            r#","discount":{{"code":"SAVE{}","pct":{}}}"#,
            id % 100,
            5 + rng.below(30)
        );
    }
    let _ = write!(
        out,
        r#","created_at":"2024-{:02}-{:02}T{:02}:{:02}:00Z"}}"#,
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
    );
}

/// Answers requests on one connection until the client closes it.
fn serve(stream: TcpStream, pages: &Pages, latency: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let page = page_number(&line);
        // Skip the headers: nothing in them changes the answer.
        let mut header = String::new();
        loop {
            header.clear();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        // No page asked for is the first page, as real APIs answer.
        let answer = page
            .unwrap_or(1)
            .checked_sub(1)
            .and_then(|i| pages.bodies.get(i as usize))
            .unwrap_or(&pages.empty);
        writer.write_all(&answer.bytes)?;
    }
}

/// The `page` query parameter of a request line (`GET /items?page=3&per_page=100 HTTP/1.1`).
fn page_number(request_line: &str) -> Option<u64> {
    let target = request_line.split(' ').nth(1)?;
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("page="))
        .and_then(|n| n.parse().ok())
}
