//! The listener's connections as tonic takes them, without a busy loop at the fd limit.
//!
//! When the fd table is full, accept fails with EMFILE (or ENFILE) while the listener stays
//! readable: tonic logs the error and polls again at once, and the process spins. Here an fd
//! kept in reserve is given up to accept the pending connection and close it at once (that
//! client sees its connection closed), then taken again; if the reserve is gone (another
//! task took the fd) the stream pauses before accepting again.

use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;

const PAUSE: Duration = Duration::from_millis(100);

pub struct Incoming {
    listener: UnixListener,
    reserve: Option<File>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// One warning per episode at the limit, not one per refused connection.
    at_limit: bool,
}

fn reserve_fd() -> Option<File> {
    File::open("/dev/null").ok()
}

impl Incoming {
    pub fn new(listener: UnixListener) -> Incoming {
        Incoming { listener, reserve: reserve_fd(), pause: None, at_limit: false }
    }
}

fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

impl Stream for Incoming {
    type Item = std::io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(p) = this.pause.as_mut() {
                if p.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
                if this.reserve.is_none() {
                    this.reserve = reserve_fd();
                }
            }
            match this.listener.poll_accept(cx) {
                Poll::Ready(Ok((s, _))) => {
                    this.at_limit = false;
                    return Poll::Ready(Some(Ok(s)));
                }
                Poll::Ready(Err(e)) if out_of_fds(&e) => {
                    if !this.at_limit {
                        this.at_limit = true;
                        tracing::warn!("out of file descriptors ({e}); refusing connections");
                    }
                    if this.reserve.take().is_some() {
                        if let Poll::Ready(Ok((s, _))) = this.listener.poll_accept(cx) {
                            drop(s);
                        }
                        this.reserve = reserve_fd();
                        if this.reserve.is_none() {
                            this.pause = Some(Box::pin(tokio::time::sleep(PAUSE)));
                        }
                    } else {
                        this.pause = Some(Box::pin(tokio::time::sleep(PAUSE)));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
