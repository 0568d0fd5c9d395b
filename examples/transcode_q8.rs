//! Writes a Q8_0 copy of a GGUF (Q4_0/Q4_1 tensors requantised), for measuring the two side by
//! side with scripts/bench-local. usage: transcode_q8 IN.gguf OUT.gguf
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let t = std::time::Instant::now();
    tandem::models::transcode::to_q8(a[1].as_ref(), a[2].as_ref()).unwrap();
    eprintln!("transcoded in {:.2}s", t.elapsed().as_secs_f64());
}
