//! The Hugging Face source: one HTTP GET of `<endpoint>/<repo>/resolve/<revision>/<file>` into the
//! `.part` file, resuming with a Range request when a previous pull left bytes behind, hashing
//! as it writes. Verification and installation belong to `pull`.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::progress::{Meter, Sink};
use super::{Download, ModelError, PullEvent, Source};

/// Returns the sha256 of the complete `.part` file.
pub(crate) async fn fetch(
    name: &str,
    d: &Download,
    part: &Path,
    opts: &super::PullOptions,
    sink: &Sink,
) -> Result<String, ModelError> {
    let fail = |message: String| ModelError::Download {
        name: name.into(),
        via: Source::Hf,
        message,
    };
    let Some(hf) = &d.hf else {
        return Err(fail("no Hugging Face location is known".into()));
    };
    let url = format!(
        "{}/{}/resolve/{}/{}",
        opts.hf_endpoint.trim_end_matches('/'),
        hf.repo,
        hf.revision,
        hf.file
    );
    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        // A stalled transfer fails rather than hanging the pull forever.
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(chain(&e)))?;

    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if d.size.is_some_and(|s| have > s) {
        have = 0;
    }
    let mut req = client.get(&url);
    if have > 0 {
        req = req.header(RANGE, format!("bytes={have}-"));
    }
    if let Some(t) = &opts.hf_token {
        req = req.bearer_auth(t);
    }
    let host = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    let host = host.unwrap_or_else(|| url.clone());
    let mut resp = req
        .send()
        .await
        .map_err(|e| fail(format!("cannot reach {host}: {}", chain(&e.without_url()))))?;
    let status = resp.status();
    let resumed =
        have > 0 && status == StatusCode::PARTIAL_CONTENT && range_start(&resp) == Some(have);
    if !(status.is_success() || resumed) {
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                "; the repo may be gated: accept its terms on huggingface.co and set HF_TOKEN"
            }
            StatusCode::NOT_FOUND => "; check repo and file",
            StatusCode::RANGE_NOT_SATISFIABLE => "; delete the .part file and pull again",
            _ => "",
        };
        return Err(fail(format!("HTTP {status} from {url}{hint}")));
    }
    if status == StatusCode::PARTIAL_CONTENT && !resumed {
        return Err(fail(format!(
            "the server answered a range we did not ask for ({url})"
        )));
    }

    let mut hasher = Sha256::new();
    let file = if resumed {
        sink(&PullEvent::Resuming(have));
        hasher = prefix_hash(part.to_path_buf(), hasher)
            .await
            .map_err(|e| fail(format!("cannot read {}: {e}", part.display())))?;
        tokio::fs::OpenOptions::new().append(true).open(part).await
    } else {
        have = 0;
        tokio::fs::File::create(part).await
    };
    let mut file = file.map_err(ModelError::io("write", part))?;
    let total = resp.content_length().map(|n| n + have).or(d.size);
    let limit = d.size.or(total);
    let mut meter = Meter::new(sink.clone(), PullEvent::Downloading, total, have);
    let mut done = have;
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        fail(format!(
            "{} after {done} bytes; pull again to resume",
            chain(&e)
        ))
    })? {
        done += chunk.len() as u64;
        // A server that sends more than the file's size is broken or hostile; stop filling the disk.
        if limit.is_some_and(|l| done > l) {
            drop(file);
            let _ = std::fs::remove_file(part);
            return Err(fail(format!(
                "the server sent more than the expected {} bytes",
                limit.unwrap_or_default()
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(ModelError::io("write", part))?;
        meter.set(done);
    }
    meter.finish();
    file.sync_all()
        .await
        .map_err(ModelError::io("write", part))?;
    Ok(hex::encode(hasher.finalize()))
}

fn range_start(resp: &reqwest::Response) -> Option<u64> {
    // "bytes 123-456/789"
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

async fn prefix_hash(path: std::path::PathBuf, mut hasher: Sha256) -> std::io::Result<Sha256> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.read(&mut buf)? {
                0 => return Ok(hasher),
                n => hasher.update(&buf[..n]),
            }
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

/// reqwest's Display stops at "error sending request"; the cause (DNS, refused, timeout) is
/// what a user can act on.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}
