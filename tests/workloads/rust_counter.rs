//! rust_counter CTL: a worker thread increments counters in a `HashMap<String, u64>`
//! (keys k0..k9, round robin) behind a mutex every 10 ms, and a total in an atomic; main
//! prints "progress N" every 100 ms. After CTL/GO, main stops and joins the worker and
//! checks: the map's sum equals the total, the keys differ by at most one, the worker's TID
//! (from /proc/thread-self) is the one it had before the checkpoint, and a Vec built at
//! start is intact. Prints PASS or FAIL and exits 0 or 1.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn fail(msg: String) -> ! {
    println!("FAIL {msg}");
    std::process::exit(1);
}

fn main() {
    let ctl = std::env::args().nth(1).expect("usage: rust_counter CTL");
    let go = Path::new(&ctl).join("GO");
    let map: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let data: Vec<u64> = (0..100_000u64).map(|i| i.wrapping_mul(2654435761)).collect();

    let worker = {
        let (map, total, stop) = (map.clone(), total.clone(), stop.clone());
        std::thread::spawn(move || {
            let before = tid();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                *map.lock().unwrap().entry(format!("k{}", i % 10)).or_insert(0) += 1;
                total.fetch_add(1, Ordering::SeqCst);
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (before, tid(), i)
        })
    };
    while total.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("READY {}", std::process::id());
    let main_tid = tid();
    while !go.exists() {
        println!("progress {}", total.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let (before, after, steps) = worker.join().unwrap_or_else(|_| fail("worker panicked".into()));
    if before != after {
        fail(format!("worker thread was {before}, is {after}"));
    }
    if main_tid != tid() {
        fail(format!("main thread was {main_tid}, is {}", tid()));
    }
    let map = map.lock().unwrap();
    let sum: u64 = map.values().sum();
    let n = total.load(Ordering::SeqCst);
    if sum != n || steps != n {
        fail(format!("map sums to {sum}, total {n}, worker steps {steps}"));
    }
    let (min, max) = (map.values().min().unwrap(), map.values().max().unwrap());
    if max - min > 1 || map.len() != 10.min(n as usize) {
        fail(format!("keys uneven: {map:?}"));
    }
    if data
        .iter()
        .enumerate()
        .any(|(i, v)| *v != (i as u64).wrapping_mul(2654435761))
    {
        fail("the Vec changed".into());
    }
    println!("PASS total={n} keys={} pid={}", map.len(), std::process::id());
}
