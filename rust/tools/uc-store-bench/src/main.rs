//! `uc-store-bench`: one etcd-client load generator for any etcd v3 API
//! store, so uc-store and etcd are measured with the same client, the same
//! concurrency and the same key and value sizes. Prints one line:
//! `<op> ops=<n> secs=<s> ops_per_sec=<r> p50_ms=<x> p99_ms=<y> errors=<e>`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use etcd_client::{Client, GetOptions};
use tokio::sync::Mutex;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Op {
    /// Puts of distinct keys.
    Put,
    /// Linearizable gets of one of `--keys` existing keys.
    Range,
    /// Serializable gets.
    RangeSerializable,
    /// Put on one client, time until a watcher on another sees it.
    Watch,
}

#[derive(Parser)]
#[command(
    name = "uc-store-bench",
    about = "Load generator for etcd v3 API stores"
)]
struct Args {
    /// Comma-separated client URLs.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    #[arg(long, value_enum)]
    op: Op,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// gRPC connections the clients share.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Keys read by the range ops (written first).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
}

/// Longer than any healthy request takes; counted as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn key(size: usize, n: u64) -> String {
    let text = format!("bench/{n:010}");
    format!("{text:0>size$}")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(args: Args) -> Result<(), etcd_client::Error> {
    let mut clients = Vec::new();
    for _ in 0..args.conns.max(1) {
        clients.push(Client::connect(&args.endpoints, None).await?);
    }
    let value = "x".repeat(args.value_size);
    if matches!(args.op, Op::Range | Op::RangeSerializable) {
        let mut client = clients[0].clone();
        for n in 0..args.keys as u64 {
            client
                .put(key(args.key_size, n), value.clone(), None)
                .await?;
        }
    }
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.clients {
        let mut client = clients[worker % clients.len()].clone();
        let mut watcher = clients[(worker + 1) % clients.len()].clone();
        let latencies = latencies.clone();
        let errors = errors.clone();
        let value = value.clone();
        let op = args.op;
        let key_size = args.key_size;
        let keys = args.keys as u64;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut n: u64 = 0;
            let watch_key = format!("watch/{worker}");
            let mut stream = if op == Op::Watch {
                match watcher.watch(watch_key.clone(), None).await {
                    Ok(mut stream) => {
                        let _ = stream.message().await;
                        Some(stream)
                    }
                    Err(_) => None,
                }
            } else {
                None
            };
            while Instant::now() < deadline {
                let start = Instant::now();
                let request = async {
                    match op {
                        Op::Put => {
                            let k = key(key_size, (worker as u64) << 40 | n);
                            client.put(k, value.clone(), None).await.map(drop)
                        }
                        Op::Range => client.get(key(key_size, n % keys), None).await.map(drop),
                        Op::RangeSerializable => client
                            .get(
                                key(key_size, n % keys),
                                Some(GetOptions::new().with_serializable()),
                            )
                            .await
                            .map(drop),
                        Op::Watch => match stream.as_mut() {
                            None => Err(etcd_client::Error::WatchError(
                                "the watch was not created".into(),
                            )),
                            Some(stream) => {
                                client.put(watch_key.clone(), value.clone(), None).await?;
                                match stream.message().await? {
                                    Some(_) => Ok(()),
                                    None => Err(etcd_client::Error::WatchError(
                                        "the watch stream ended".into(),
                                    )),
                                }
                            }
                        },
                    }
                };
                // A request that hangs is an error, not a stalled run.
                let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
                    Ok(outcome) => outcome.map_err(|err| err.to_string()),
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                };
                match outcome {
                    Ok(()) => mine.push(start.elapsed()),
                    Err(err) => *errors.lock().await.entry(err).or_default() += 1,
                }
                n += 1;
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut all = latencies.lock().await.clone();
    let errors = errors.lock().await;
    // The summary line stays one line for scripts; what went wrong goes to stderr.
    for (err, count) in errors.iter() {
        eprintln!("error x{count}: {err}");
    }
    all.sort_unstable();
    println!(
        "{:?} ops={} secs={secs:.2} ops_per_sec={:.0} p50_ms={:.3} p99_ms={:.3} errors={}",
        args.op,
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        errors.values().sum::<u64>()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.endpoints.is_empty() {
        eprintln!("uc-store-bench: --endpoints is required");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("uc-store-bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("uc-store-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
