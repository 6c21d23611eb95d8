//! The Win32 calls of the Windows backend, each behind a small safe function.
//! Handles are std's [`OwnedHandle`], closed on drop. Errors are the OS's
//! (`GetLastError`) as [`io::Error`]; the caller sorts them.
#![allow(unsafe_code)]

use std::io;
use std::mem::offset_of;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    ERROR_MORE_DATA, FILETIME, HANDLE, INVALID_HANDLE_VALUE, STILL_ACTIVE, WAIT_OBJECT_0,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::JobObjects::{
    IsProcessInJob, JobObjectBasicProcessIdList, JobObjectExtendedLimitInformation,
    QueryInformationJobObject, JOBOBJECT_BASIC_PROCESS_ID_LIST,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOB_OBJECT_LIMIT_PROCESS_MEMORY,
};
use windows_sys::Win32::System::ProcessStatus::{
    GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS, PROCESS_MEMORY_COUNTERS_EX,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessHandleCount, GetProcessTimes, OpenProcess, WaitForSingleObject,
};

pub use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER};
pub use windows_sys::Win32::System::Threading::{
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_VM_READ,
};

/// `Ok` when a `BOOL` result says success, else the thread's last error.
fn check(ok: i32) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn raw(h: &OwnedHandle) -> HANDLE {
    h.as_raw_handle()
}

/// A FILETIME as one number of 100 ns intervals.
fn ticks(t: FILETIME) -> u64 {
    (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)
}

/// `OpenProcess(access, FALSE, pid)`.
pub fn open_process(pid: u32, access: u32) -> io::Result<OwnedHandle> {
    // SAFETY: no pointers are passed; a null result is an error.
    let h = unsafe { OpenProcess(access, 0, pid) };
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `h` is a fresh, valid handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// `GetProcessTimes`, in 100 ns intervals: creation since 1601-01-01 UTC,
/// kernel and user time spent.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub creation: u64,
    pub kernel: u64,
    pub user: u64,
}

pub fn times(p: &OwnedHandle) -> io::Result<Times> {
    let mut t = [FILETIME::default(); 4];
    let [c, e, k, u] = &mut t;
    // SAFETY: four valid FILETIME out-pointers; `p` is a process handle with
    // PROCESS_QUERY_LIMITED_INFORMATION.
    check(unsafe { GetProcessTimes(raw(p), c, e, k, u) })?;
    Ok(Times {
        creation: ticks(t[0]),
        kernel: ticks(t[2]),
        user: ticks(t[3]),
    })
}

/// Whether the process has exited. An exited process stays openable while
/// anyone holds a handle to it, as a zombie does on unix. (`STILL_ACTIVE` is
/// also an exit code a process may choose, 259; nothing the gateway does.)
pub fn exited(p: &OwnedHandle) -> io::Result<bool> {
    let mut code = 0u32;
    // SAFETY: a valid out-pointer and a handle with
    // PROCESS_QUERY_LIMITED_INFORMATION.
    check(unsafe { GetExitCodeProcess(raw(p), &mut code) })?;
    Ok(code != STILL_ACTIVE as u32)
}

/// Working set and private bytes (`PROCESS_MEMORY_COUNTERS_EX.PrivateUsage`,
/// the commit charge; `PagefileUsage` is the same number and what Wine fills
/// in where it leaves `PrivateUsage` 0). The docs ask PROCESS_VM_READ of the
/// handle too.
pub fn memory(p: &OwnedHandle) -> io::Result<(u64, u64)> {
    let mut m = PROCESS_MEMORY_COUNTERS_EX {
        cb: size_of::<PROCESS_MEMORY_COUNTERS_EX>() as u32,
        ..Default::default()
    };
    // SAFETY: `m` is a PROCESS_MEMORY_COUNTERS_EX whose size is passed as
    // `cb`, which the API accepts in place of PROCESS_MEMORY_COUNTERS.
    check(unsafe {
        GetProcessMemoryInfo(raw(p), (&raw mut m).cast::<PROCESS_MEMORY_COUNTERS>(), m.cb)
    })?;
    let private = if m.PrivateUsage > 0 {
        m.PrivateUsage
    } else {
        m.PagefileUsage
    };
    Ok((m.WorkingSetSize as u64, private as u64))
}

/// The number of handles the process holds: what `handle.exe -s -p` counts.
pub fn handle_count(p: &OwnedHandle) -> io::Result<u32> {
    let mut n = 0u32;
    // SAFETY: a valid out-pointer and a process handle.
    check(unsafe { GetProcessHandleCount(raw(p), &mut n) })?;
    Ok(n)
}

/// Sleep until the process exits (`true`) or `timeout` passes (`false`). The
/// handle needs SYNCHRONIZE.
pub fn wait(p: &OwnedHandle, timeout: Duration) -> io::Result<bool> {
    let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX - 1);
    // SAFETY: a process handle; no pointers.
    match unsafe { WaitForSingleObject(raw(p), ms) } {
        WAIT_OBJECT_0 => Ok(true),
        WAIT_TIMEOUT => Ok(false),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The thread count of `pid` from a Toolhelp32 process snapshot
/// (`cntThreads`); `None` when the snapshot does not list it.
pub fn thread_count(pid: u32) -> io::Result<Option<u32>> {
    // SAFETY: no pointers; INVALID_HANDLE_VALUE is the error.
    let snap = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snap == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh, valid handle that nothing else owns.
    let snap = unsafe { OwnedHandle::from_raw_handle(snap) };
    let mut e = PROCESSENTRY32W {
        dwSize: size_of::<PROCESSENTRY32W>() as u32,
        ..Default::default()
    };
    // SAFETY: a snapshot handle and an entry whose dwSize is set.
    let mut more = unsafe { Process32FirstW(raw(&snap), &mut e) } != 0;
    while more {
        if e.th32ProcessID == pid {
            return Ok(Some(e.cntThreads));
        }
        // SAFETY: as above.
        more = unsafe { Process32NextW(raw(&snap), &mut e) } != 0;
    }
    Ok(None)
}

/// Whether the process runs in any job (`IsProcessInJob` with no job).
pub fn in_a_job(p: &OwnedHandle) -> io::Result<bool> {
    let mut r = 0;
    // SAFETY: a process handle, a null job (any job) and a valid out-pointer.
    check(unsafe { IsProcessInJob(raw(p), std::ptr::null_mut(), &mut r) })?;
    Ok(r != 0)
}

/// The ids of the processes in the job the calling process runs in, those of
/// its child jobs included (`QueryInformationJobObject(NULL,
/// JobObjectBasicProcessIdList)`); an error when it runs in none.
pub fn own_job_pids() -> io::Result<Vec<u32>> {
    // JOBOBJECT_BASIC_PROCESS_ID_LIST: two u32 counts, then usize ids.
    let head = offset_of!(JOBOBJECT_BASIC_PROCESS_ID_LIST, ProcessIdList) / size_of::<usize>();
    let mut room = 64;
    for _ in 0..4 {
        let mut buf = vec![0usize; head + room];
        let bytes = u32::try_from(size_of_val(buf.as_slice())).unwrap_or(u32::MAX);
        // SAFETY: `buf` is writable for `bytes` bytes and aligned as the
        // list is; a null job is the caller's own.
        let r = check(unsafe {
            QueryInformationJobObject(
                std::ptr::null_mut(),
                JobObjectBasicProcessIdList,
                buf.as_mut_ptr().cast(),
                bytes,
                std::ptr::null_mut(),
            )
        });
        let counts: Vec<u8> = buf[..head].iter().flat_map(|w| w.to_ne_bytes()).collect();
        let count = |at: usize| u32::from_ne_bytes([0, 1, 2, 3].map(|i| counts[at + i])) as usize;
        let (assigned, listed) = (count(0), count(4).min(room));
        match r {
            Err(e) if e.raw_os_error() != Some(ERROR_MORE_DATA as i32) => return Err(e),
            // More processes than room (ERROR_MORE_DATA, or a short list).
            _ if listed < assigned => room = assigned + 16,
            _ => return Ok(buf[head..head + listed].iter().map(|&p| p as u32).collect()),
        }
    }
    Err(io::Error::other("the job's process list keeps growing"))
}

/// The memory limits of the calling process's job: per process and for the
/// whole job, each `None` unless its limit flag is set.
pub fn own_job_memory_limits() -> io::Result<(Option<u64>, Option<u64>)> {
    let mut info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
    // SAFETY: `info` is writable for its size; a null job is the caller's own.
    check(unsafe {
        QueryInformationJobObject(
            std::ptr::null_mut(),
            JobObjectExtendedLimitInformation,
            (&raw mut info).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            std::ptr::null_mut(),
        )
    })?;
    let flags = info.BasicLimitInformation.LimitFlags;
    let set = |flag: u32, v: usize| (flags & flag != 0).then_some(v as u64);
    Ok((
        set(JOB_OBJECT_LIMIT_PROCESS_MEMORY, info.ProcessMemoryLimit),
        set(JOB_OBJECT_LIMIT_JOB_MEMORY, info.JobMemoryLimit),
    ))
}

/// A file's volume serial number and 64-bit file index
/// (`GetFileInformationByHandle`): its identity across renames, as
/// (st_dev, st_ino) on unix.
pub fn file_id(f: &std::fs::File) -> io::Result<(u64, u64)> {
    let mut i = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: an open file's handle and a valid out-pointer.
    check(unsafe { GetFileInformationByHandle(f.as_raw_handle(), &mut i) })?;
    Ok((
        u64::from(i.dwVolumeSerialNumber),
        (u64::from(i.nFileIndexHigh) << 32) | u64::from(i.nFileIndexLow),
    ))
}

/// Whether this runs under Wine: its ntdll exports `wine_get_version`.
#[cfg(test)]
pub fn wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: NUL-terminated names; ntdll is loaded in every process.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Job objects for the tests: put the calling process in a new job with a
/// per-process memory limit.
#[cfg(test)]
pub mod test_job {
    use super::*;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, SetInformationJobObject,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;

    /// Put this process, and so the children it starts from now on, in a new
    /// job limited to `limit` bytes per process. For good: a process never
    /// leaves its job.
    pub fn join_limited(limit: u64) -> io::Result<OwnedHandle> {
        // SAFETY: null attributes and name are allowed.
        let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if job.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh handle that nothing else owns.
        let job = unsafe { OwnedHandle::from_raw_handle(job) };
        let mut info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_PROCESS_MEMORY;
        info.ProcessMemoryLimit = limit as usize;
        // SAFETY: `info` is readable for its size.
        check(unsafe {
            SetInformationJobObject(
                raw(&job),
                JobObjectExtendedLimitInformation,
                (&raw const info).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        })?;
        // SAFETY: a job handle and the pseudo-handle of this process.
        check(unsafe { AssignProcessToJobObject(raw(&job), GetCurrentProcess()) })?;
        Ok(job)
    }
}
