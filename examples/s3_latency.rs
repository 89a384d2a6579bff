//! How much of a slow link the background pipeline hides: a bulk load of
//! N random pairs plus its commit, then a cold full scan after reopening,
//! each on a store in `moto_server` (started here on a free loopback port)
//! reached directly and through a proxy that delays every request by
//! `--delay-ms` (default 20). Both links go through the proxy, the direct
//! one with no delay, so both count their requests the same way. Reports
//! medians of `--runs` runs (default 3) and the slow ÷ direct ratios.
//!
//! Run: `cargo run --release --example s3_latency -- [N] [--runs R]
//! [--delay-ms MS]` (needs `moto_server`: `pip install 'moto[server]'`).

#[path = "../tests/support/moto.rs"]
mod moto;

use larix::{Forest, Options};
use moto::{LatencyProxy, Moto};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;

fn options(endpoint: &str) -> Options {
    Options::default()
        .storage_option("aws_endpoint", endpoint)
        .storage_option("aws_allow_http", "true")
        .storage_option("aws_access_key_id", "larix-bench")
        .storage_option("aws_secret_access_key", "larix-bench")
        .storage_option("aws_region", "us-east-1")
}

/// One run on `endpoint`: (load + commit time, requests), (cold scan
/// time, requests).
fn run(
    proxy: &LatencyProxy,
    url: &str,
    pairs: &[support::Pair],
) -> Result<[(Duration, u64); 2], Box<dyn std::error::Error>> {
    let before = proxy.requests();
    let start = Instant::now();
    {
        let forest = Forest::open_url(url, options(&proxy.endpoint()))?;
        let tree = forest.create_tree("t")?;
        for (k, v) in pairs {
            tree.insert(k, v)?;
        }
        forest.commit()?;
    }
    let load = (start.elapsed(), proxy.requests() - before);
    let before = proxy.requests();
    let start = Instant::now();
    let forest = Forest::open_url_read_only(url, options(&proxy.endpoint()))?;
    let tree = forest.tree("t")?.ok_or("tree t is missing")?;
    let mut n = 0;
    for entry in tree.range(..)? {
        entry?;
        n += 1;
    }
    if n != pairs.len() {
        return Err(format!("scanned {n} entries of {}", pairs.len()).into());
    }
    Ok([load, (start.elapsed(), proxy.requests() - before)])
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let n = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runs = flag("--runs").unwrap_or(3).max(1);
    let delay = Duration::from_millis(flag("--delay-ms").unwrap_or(20));
    let Some(moto) = Moto::start() else {
        return Err("moto_server is not installed: pip install 'moto[server]'".into());
    };
    moto.create_bucket("bench");
    let direct = LatencyProxy::start(moto.port(), Duration::ZERO);
    let slow = LatencyProxy::start(moto.port(), delay);
    let pairs = support::pairs(n, 42);
    println!(
        "{n} random pairs (24-byte keys, 150-byte values), {runs} runs, \
         {} ms added per request on the slow link",
        delay.as_millis()
    );
    let mut rows: Vec<[Vec<Duration>; 2]> = vec![Default::default(), Default::default()];
    let mut requests = [[0u64; 2]; 2];
    for r in 0..runs {
        for (i, proxy) in [&direct, &slow].into_iter().enumerate() {
            let url = format!("s3://bench/run-{r}-link-{i}");
            let result = run(proxy, &url, &pairs)?;
            for (j, (time, reqs)) in result.into_iter().enumerate() {
                rows[i][j].push(time);
                requests[i][j] = reqs;
            }
        }
    }
    println!("| row | direct | +{} ms link | ratio |", delay.as_millis());
    println!("| --- | ---: | ---: | ---: |");
    for (j, name) in ["bulk load + commit", "cold full scan after reopen"]
        .into_iter()
        .enumerate()
    {
        let d = median(rows[0][j].clone());
        let s = median(rows[1][j].clone());
        println!(
            "| {name} | {:.0} ms ({} requests) | {:.0} ms ({} requests) | {:.2}x |",
            d.as_secs_f64() * 1e3,
            requests[0][j],
            s.as_secs_f64() * 1e3,
            requests[1][j],
            s.as_secs_f64() / d.as_secs_f64()
        );
    }
    Ok(())
}
