//! A spinner on stderr for long work (compiling a large plugin takes
//! seconds). It shows only when stderr is a terminal, and only once the work
//! has taken longer than [`DELAY`], so quick work (a cache hit) and piped
//! output stay quiet.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long work runs before the spinner appears
/// (`TESSERA_PROGRESS_DELAY_MS` overrides it, for tests).
pub const DELAY: Duration = Duration::from_millis(250);

fn delay() -> Duration {
    std::env::var("TESSERA_PROGRESS_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DELAY)
}
const FRAME: Duration = Duration::from_millis(100);
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Runs while alive; stops and clears its line when dropped.
#[derive(Debug)]
pub struct Spinner {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner with `message`, if stderr is a terminal.
    pub fn start(message: String) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let done = done.clone();
            std::thread::spawn(move || spin(&done, &message))
        });
        Spinner { done, thread }
    }
}

fn spin(done: &AtomicBool, message: &str) {
    let delay = delay();
    let mut waited = Duration::ZERO;
    while waited < delay {
        if done.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(FRAME / 2);
        waited += FRAME / 2;
    }
    let mut stderr = std::io::stderr();
    for frame in FRAMES.iter().cycle() {
        let _ = write!(stderr, "\r{frame} {message}");
        let _ = stderr.flush();
        std::thread::sleep(FRAME);
        if done.load(Ordering::Relaxed) {
            break;
        }
    }
    // Clear the line.
    let _ = write!(stderr, "\r\x1b[2K");
    let _ = stderr.flush();
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
