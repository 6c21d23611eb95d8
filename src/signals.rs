//! The signals the server acts on. Part of the binary (`mod signals` in
//! main.rs), not the library.
//!
//! - Unix: SIGHUP reloads the web config; SIGTERM and SIGINT stop the server.
//! - Windows: Ctrl+C, Ctrl+Break, closing the console and system shutdown
//!   stop it, and so does the service control manager's Stop or Shutdown
//!   when it runs as a service ([`request_stop`], from src/service.rs).
//!   Windows has no SIGHUP, so nothing reloads the web config there: restart
//!   the exporter to apply a changed file.
//!
//! [`install`] is called before the server listens: a signal must never find
//! its default action (exit).

#[cfg(unix)]
pub use unix::{install, Reload};
#[cfg(windows)]
pub use windows::{install, request_stop, Reload};

#[cfg(unix)]
mod unix {
    use anyhow::Context;
    use tokio::signal::unix::{signal, Signal, SignalKind};

    /// SIGHUP.
    pub struct Reload(Signal);

    /// SIGTERM or SIGINT.
    pub struct Shutdown {
        term: Signal,
        int: Signal,
    }

    pub fn install() -> anyhow::Result<(Reload, Shutdown)> {
        let on = |kind| signal(kind).context("cannot handle signals");
        let reload = Reload(on(SignalKind::hangup())?);
        let shutdown = Shutdown {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
        };
        Ok((reload, shutdown))
    }

    impl Reload {
        /// The next SIGHUP; `None` once no more can come.
        pub async fn recv(&mut self) -> Option<()> {
            self.0.recv().await
        }
    }

    impl Shutdown {
        pub async fn recv(mut self) {
            tokio::select! {
                _ = self.term.recv() => {},
                _ = self.int.recv() => {},
            }
        }
    }
}

#[cfg(windows)]
mod windows {
    use anyhow::Context;
    use tokio::signal::windows::{
        ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown, CtrlBreak, CtrlC, CtrlClose, CtrlShutdown,
    };
    use tokio::sync::Notify;

    /// The service control manager's Stop or Shutdown. `notify_one` keeps
    /// the request until [`Shutdown::recv`] takes it: one that comes before
    /// the server waits for it is not lost.
    static SERVICE_STOP: Notify = Notify::const_new();

    /// Stop the server as Ctrl+C does; called from the service's control
    /// handler, on a thread of the service control dispatcher.
    pub fn request_stop() {
        SERVICE_STOP.notify_one();
    }

    /// Nothing: Windows has no SIGHUP.
    pub struct Reload;

    /// Ctrl+C, Ctrl+Break, the console closing, the system shutting down, or
    /// [`request_stop`].
    pub struct Shutdown {
        c: CtrlC,
        brk: CtrlBreak,
        close: CtrlClose,
        shutdown: CtrlShutdown,
    }

    pub fn install() -> anyhow::Result<(Reload, Shutdown)> {
        let context = "cannot handle console control events";
        let shutdown = Shutdown {
            c: ctrl_c().context(context)?,
            brk: ctrl_break().context(context)?,
            close: ctrl_close().context(context)?,
            shutdown: ctrl_shutdown().context(context)?,
        };
        Ok((Reload, shutdown))
    }

    impl Reload {
        /// `None` at once: no reload request ever comes.
        pub async fn recv(&mut self) -> Option<()> {
            None
        }
    }

    impl Shutdown {
        pub async fn recv(mut self) {
            tokio::select! {
                _ = self.c.recv() => {},
                _ = self.brk.recv() => {},
                _ = self.close.recv() => {},
                _ = self.shutdown.recv() => {},
                _ = SERVICE_STOP.notified() => {},
            }
        }
    }
}
