//! What the benches say while they run: progress on stderr, so that stdout
//! stays the figures (and the workers' protocol).

pub fn progress(what: &str) {
    eprintln!("==> {what}");
}
