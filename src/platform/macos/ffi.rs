//! The macOS backend's calls into libproc, Mach and sysctl. Each returns an
//! owned value or a [`ProcError`]: `ESRCH` is [`ProcError::Gone`], `EPERM`
//! (another user's process) [`ProcError::Denied`]. Decoding is
//! [`super::decode`]'s.
#![allow(unsafe_code)]

use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use libc::{c_int, c_void};

use super::decode::SOCKET_FDINFO_SIZE;
use crate::platform::{Pid, ProcError};

/// `proc_info.h`'s flavor for a socket fd; libc lacks it.
const PROC_PIDFDSOCKETINFO: c_int = 3;

/// `mach_timebase_info_data_t`, declared here with its function: libc's are
/// deprecated (for the mach2 crate).
#[repr(C)]
struct MachTimebaseInfo {
    numer: u32,
    denom: u32,
}

extern "C" {
    fn mach_timebase_info(info: *mut MachTimebaseInfo) -> c_int;
}

fn clear_errno() {
    // SAFETY: `__error` returns this thread's errno slot, always valid.
    unsafe { *libc::__error() = 0 }
}

/// The error of a libproc call that answered `got` bytes instead of the
/// `want` it should have.
fn failed(pid: Pid, what: &'static str, got: c_int, want: usize) -> ProcError {
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ESRCH) => ProcError::Gone(pid),
        Some(libc::EPERM) | Some(libc::EACCES) => ProcError::Denied { pid, what },
        Some(0) | None => ProcError::Other {
            pid,
            what,
            reason: format!("{got} bytes where {want} were expected"),
        },
        _ => ProcError::Other {
            pid,
            what,
            reason: e.to_string(),
        },
    }
}

/// One fixed-size `proc_pidinfo` flavor.
fn pidinfo<T: Copy>(pid: Pid, flavor: c_int, what: &'static str) -> Result<T, ProcError> {
    let mut out = MaybeUninit::<T>::zeroed();
    let size = size_of::<T>();
    clear_errno();
    // SAFETY: `out` is a writable buffer of `size` bytes; the kernel writes at
    // most that many.
    let got = unsafe {
        libc::proc_pidinfo(
            pid,
            flavor,
            0,
            out.as_mut_ptr().cast::<c_void>(),
            size as c_int,
        )
    };
    if got as usize != size {
        return Err(failed(pid, what, got, size));
    }
    // SAFETY: zeroed, then filled whole by the kernel; the libc structs are
    // plain integers and arrays, valid for any bytes.
    Ok(unsafe { out.assume_init() })
}

/// `PROC_PIDTBSDINFO`: start time, parent, status.
pub fn bsd_info(pid: Pid) -> Result<libc::proc_bsdinfo, ProcError> {
    pidinfo(pid, libc::PROC_PIDTBSDINFO, "the BSD info")
}

/// `PROC_PIDTASKALLINFO`: the BSD info and the Mach task info (memory, CPU
/// times, threads) in one call.
pub fn task_all_info(pid: Pid) -> Result<libc::proc_taskallinfo, ProcError> {
    pidinfo(pid, libc::PROC_PIDTASKALLINFO, "the task info")
}

/// `PROC_PIDLISTFDS`: every open fd of `pid` with its `PROX_FDTYPE_*`.
pub fn list_fds(pid: Pid) -> Result<Vec<(i32, u32)>, ProcError> {
    let what = "open fds";
    let item = size_of::<libc::proc_fdinfo>();
    clear_errno();
    // SAFETY: a null buffer of size 0 asks for the size the table needs.
    let need =
        unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, std::ptr::null_mut(), 0) };
    if need < 0 || (need == 0 && std::io::Error::last_os_error().raw_os_error() != Some(0)) {
        return Err(failed(pid, what, need, item));
    }
    // Room for fds opened between the two calls.
    let cap = need as usize / item + 32;
    let mut fds: Vec<libc::proc_fdinfo> = Vec::with_capacity(cap);
    clear_errno();
    // SAFETY: `fds` has room for `cap` entries, `cap * item` bytes; the kernel
    // writes at most that many and says how many it wrote.
    let got = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDLISTFDS,
            0,
            fds.as_mut_ptr().cast::<c_void>(),
            (cap * item) as c_int,
        )
    };
    if got < 0 || (got == 0 && std::io::Error::last_os_error().raw_os_error() != Some(0)) {
        return Err(failed(pid, what, got, item));
    }
    let n = (got as usize / item).min(cap);
    // SAFETY: the kernel filled the first `n` entries (integers only).
    unsafe { fds.set_len(n) };
    Ok(fds.iter().map(|f| (f.proc_fd, f.proc_fdtype)).collect())
}

/// `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)`: the `socket_fdinfo` of socket fd
/// `fd`, raw; `Ok(None)` when the fd was closed meanwhile.
pub fn socket_fdinfo(pid: Pid, fd: i32) -> Result<Option<Vec<u8>>, ProcError> {
    let mut buf = vec![0u8; SOCKET_FDINFO_SIZE];
    clear_errno();
    // SAFETY: `buf` is writable for `SOCKET_FDINFO_SIZE` bytes, the size the
    // kernel writes for this flavor.
    let got = unsafe {
        libc::proc_pidfdinfo(
            pid,
            fd,
            PROC_PIDFDSOCKETINFO,
            buf.as_mut_ptr().cast::<c_void>(),
            SOCKET_FDINFO_SIZE as c_int,
        )
    };
    if got as usize == SOCKET_FDINFO_SIZE {
        return Ok(Some(buf));
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EBADF) | Some(libc::ENOTSUP) => Ok(None),
        _ => Err(failed(pid, "a socket fd", got, SOCKET_FDINFO_SIZE)),
    }
}

/// Every pid, from `proc_listallpids`.
pub fn all_pids() -> Vec<Pid> {
    // SAFETY: a null buffer asks for the number of pids.
    let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Vec::new();
    }
    let cap = n as usize + 64;
    let mut pids: Vec<Pid> = Vec::with_capacity(cap);
    // SAFETY: `pids` has room for `cap` pids; the kernel writes at most that
    // many and answers how many.
    let got = unsafe {
        libc::proc_listallpids(
            pids.as_mut_ptr().cast::<c_void>(),
            (cap * size_of::<Pid>()) as c_int,
        )
    };
    // SAFETY: the first `got` entries were written.
    unsafe { pids.set_len((got.max(0) as usize).min(cap)) };
    pids.retain(|&p| p > 0);
    pids
}

/// The Mach timebase, `(numer, denom)`: Mach absolute time units to ns.
pub fn timebase() -> (u32, u32) {
    let mut tb = MachTimebaseInfo { numer: 0, denom: 0 };
    // SAFETY: `tb` is a valid, writable `mach_timebase_info_data_t`.
    let ok = unsafe { mach_timebase_info(&mut tb) } == 0;
    if ok && tb.denom != 0 {
        (tb.numer, tb.denom)
    } else {
        (1, 1)
    }
}

/// `kern.maxfilesperproc`: the most fds a non-root process may open.
pub fn max_files_per_proc() -> Option<u64> {
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>();
    // SAFETY: the name is NUL-terminated; `v` and `len` are valid and `len`
    // is `v`'s size.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.maxfilesperproc".as_ptr(),
            (&mut v as *mut c_int).cast::<c_void>(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && len == size_of::<c_int>())
        .then(|| u64::try_from(v).ok())
        .flatten()
}

/// A kqueue that wakes when `pid` exits (`EVFILT_PROC`, `NOTE_EXIT`);
/// `None` when `pid` does not run or no kqueue can be made.
pub fn exit_queue(pid: Pid) -> Option<OwnedFd> {
    let ident = usize::try_from(pid).ok().filter(|&p| p > 0)?;
    // SAFETY: no arguments; answers a new fd or -1.
    let kq = unsafe { libc::kqueue() };
    if kq < 0 {
        return None;
    }
    // SAFETY: `kq` is a new fd that nothing else owns.
    let kq = unsafe { OwnedFd::from_raw_fd(kq) };
    let change = libc::kevent {
        ident,
        filter: libc::EVFILT_PROC,
        flags: libc::EV_ADD,
        fflags: libc::NOTE_EXIT,
        data: 0,
        udata: std::ptr::null_mut(),
    };
    // SAFETY: one valid change in, no event out, so no timeout is needed.
    let rc = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            &change,
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    (rc == 0).then_some(kq)
}

/// Sleep on an [`exit_queue`] until its process exits or `timeout` passes.
pub fn wait_exit(kq: &OwnedFd, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    let mut event = MaybeUninit::<libc::kevent>::zeroed();
    // SAFETY: no change in, room for one event out, `ts` valid. Interrupted
    // or failed: the caller's next check decides.
    let _ = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            std::ptr::null(),
            0,
            event.as_mut_ptr(),
            1,
            &ts,
        )
    };
}
