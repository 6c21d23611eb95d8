//! Signalling one process, only while it is the process it was: the
//! identity (pid and start time) is checked again at the moment of the
//! signal, so a pid the OS has since reused is never hit.
//!
//! - Linux: a pidfd is opened first, then the identity checked, then the
//!   signal sent through the pidfd: no window for reuse.
//! - macOS and other Unix: the identity is checked, then `kill(2)`: the
//!   window is one system call wide.
//! - Windows: a handle is opened first (it keeps the pid from reuse), then
//!   the identity checked, then `TerminateProcess`. Windows has no SIGTERM
//!   for a console program: [`Signal::Term`] is unsupported there.
//!
//! Everything else of `recover` reads the OS through the platform layer.
#![allow(unsafe_code)]

use crate::platform::{Identity, Platform};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ask it to stop (SIGTERM): the gateway drains and removes its locks.
    Term,
    /// SIGKILL, TerminateProcess.
    Kill,
}

/// What became of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Sent,
    /// It had exited, or its pid is another process now: nothing was sent.
    Gone,
}

/// Send `sig` to `id` if it still runs as that process.
pub fn send(p: &dyn Platform, id: Identity, sig: Signal) -> Result<Sent, String> {
    imp::send(p, id, sig)
}

/// Whether `id` still runs as that process.
pub fn alive(p: &dyn Platform, id: Identity) -> bool {
    p.identity(id.pid).is_ok_and(|now| now == id)
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal as Sig};

    pub fn send(p: &dyn Platform, id: Identity, sig: Signal) -> Result<Sent, String> {
        let Some(pid) = Pid::from_raw(id.pid) else {
            return Ok(Sent::Gone);
        };
        let fd = match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(Sent::Gone),
            Err(e) => return Err(format!("pidfd_open({}): {e}", id.pid)),
        };
        if !alive(p, id) {
            return Ok(Sent::Gone);
        }
        let sig = match sig {
            Signal::Term => Sig::TERM,
            Signal::Kill => Sig::KILL,
        };
        match pidfd_send_signal(&fd, sig) {
            Ok(()) => Ok(Sent::Sent),
            Err(rustix::io::Errno::SRCH) => Ok(Sent::Gone),
            Err(e) => Err(format!("signal {sig:?} to pid {}: {e}", id.pid)),
        }
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod imp {
    use super::*;
    use rustix::process::{kill_process, Pid, Signal as Sig};

    pub fn send(p: &dyn Platform, id: Identity, sig: Signal) -> Result<Sent, String> {
        let Some(pid) = Pid::from_raw(id.pid) else {
            return Ok(Sent::Gone);
        };
        if !alive(p, id) {
            return Ok(Sent::Gone);
        }
        let sig = match sig {
            Signal::Term => Sig::TERM,
            Signal::Kill => Sig::KILL,
        };
        match kill_process(pid, sig) {
            Ok(()) => Ok(Sent::Sent),
            Err(rustix::io::Errno::SRCH) => Ok(Sent::Gone),
            Err(e) => Err(format!("signal {sig:?} to pid {}: {e}", id.pid)),
        }
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::Threading::{TerminateProcess, PROCESS_TERMINATE};

    use crate::platform::windows::win32;

    pub fn send(p: &dyn Platform, id: Identity, sig: Signal) -> Result<Sent, String> {
        if sig == Signal::Term {
            return Err("Windows has no SIGTERM for the gateway".into());
        }
        let Ok(pid) = u32::try_from(id.pid) else {
            return Ok(Sent::Gone);
        };
        let access = PROCESS_TERMINATE | win32::PROCESS_QUERY_LIMITED_INFORMATION;
        let h = match win32::open_process(pid, access) {
            Ok(h) => h,
            Err(e) if e.raw_os_error() == Some(win32::ERROR_INVALID_PARAMETER as i32) => {
                return Ok(Sent::Gone)
            }
            Err(e) => return Err(format!("OpenProcess({pid}): {e}")),
        };
        // The open handle keeps the pid from being reused.
        if !alive(p, id) {
            return Ok(Sent::Gone);
        }
        // SAFETY: `h` is a valid process handle opened with PROCESS_TERMINATE.
        if unsafe { TerminateProcess(h.as_raw_handle(), 1) } == 0 {
            return Err(format!(
                "TerminateProcess({pid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Sent::Sent)
    }
}

#[cfg(not(any(unix, windows)))]
mod imp {
    use super::*;

    pub fn send(_: &dyn Platform, _: Identity, _: Signal) -> Result<Sent, String> {
        Err("signalling a process is not supported on this OS".into())
    }
}
