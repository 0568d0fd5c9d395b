//! Performance probes, run by hand (`cargo test --test tui_perf -- --ignored --nocapture`):
//! time to first frame and idle CPU of the real binary in tmux, read from /proc. They print
//! numbers for docs/tui-perf.md rather than assert tight timings, which CI machines can't keep.
//! `TUI_PERF_BIN=path` probes another build of the binary.

use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(sock: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-L")
        .arg(sock)
        .args(args)
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Kill(String);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .arg("kill-server")
            .output();
    }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name, which may contain spaces, start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
#[ignore]
fn first_frame_and_idle_cpu() {
    let models = std::env::var("TANDEM_MODELS_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/tandem-models", std::env::var("HOME").unwrap()));
    let tmp = tempfile::tempdir().unwrap();
    let sock = format!("tandem-perf-{}", std::process::id());
    let _k = Kill(sock.clone());
    let t = tmp.path().display();
    // TUI_PERF_BIN measures another build (say, the release binary) with the same probe.
    let bin = std::env::var("TUI_PERF_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tandem").into());
    let cmd = format!(
        "XDG_CONFIG_HOME={t}/c XDG_DATA_HOME={t}/d XDG_STATE_HOME={t}/s TANDEM_MODELS_DIR={models} exec {bin} --route local"
    );
    let start = Instant::now();
    tmux(
        &sock,
        &[
            "new-session",
            "-d",
            "-s",
            "p",
            "-x",
            "120",
            "-y",
            "40",
            &cmd,
        ],
    );
    let first = loop {
        if tmux(&sock, &["capture-pane", "-p", "-t", "p"]).contains("chats") {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no first frame");
        std::thread::sleep(Duration::from_millis(2));
    };
    let loaded_at = start.elapsed();
    let screen = loop {
        let s = tmux(&sock, &["capture-pane", "-p", "-t", "p"]);
        if s.contains("ready") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "model never loaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = tmux(&sock, &["display-message", "-p", "-t", "p", "#{pane_pid}"])
        .trim()
        .to_string();
    let hz = 100.0; // USER_HZ on Linux
    let before = cpu_ticks(&pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_ticks(&pid) - before) as f64 / hz / 10.0 * 100.0;
    println!("first frame (incl. tmux spawn + poll): {first:?}; frame seen by {loaded_at:?}");
    println!(
        "model ready after {:?}",
        start.elapsed() - Duration::from_secs(10)
    );
    println!("idle CPU over 10 s: {idle:.2}%");
    println!("screen:\n{screen}");
    assert!(idle < 5.0, "idle CPU {idle:.2}%");
}
