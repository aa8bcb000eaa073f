//! A one-line progress indicator on stderr for slow local work (RSA-4096 generation takes
//! seconds), shown only when stderr is a terminal so logs and pipes stay clean.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Frame interval: fast enough to look alive, slow enough to cost nothing.
const FRAME: Duration = Duration::from_millis(100);

/// A running spinner; stopped (and its line cleared) by [`Spinner::finish`] or on drop.
#[derive(Debug)]
pub(crate) struct Spinner {
    /// Tells the drawing thread to stop; an atomic because it is the only shared state.
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts drawing `message` with a spinner, if stderr is a terminal.
    pub(crate) fn start(message: &str) -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = Arc::clone(&stop);
            let message = message.to_owned();
            std::thread::spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut i = 0usize;
                let started = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(
                        err,
                        "\r{} {message} ({:.1}s)",
                        frames[i % frames.len()],
                        started.elapsed().as_secs_f32()
                    );
                    let _ = err.flush();
                    drop(err);
                    i += 1;
                    std::thread::sleep(FRAME);
                }
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            })
        });
        Spinner { stop, thread }
    }

    /// Stops the spinner and clears its line.
    pub(crate) fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Runs `work` with a spinner showing `message`.
pub(crate) fn with_spinner<T>(message: &str, work: impl FnOnce() -> T) -> T {
    let spinner = Spinner::start(message);
    let out = work();
    spinner.finish();
    out
}
