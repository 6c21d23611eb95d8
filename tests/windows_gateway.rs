//! The exporter for Windows against a Windows stand-in for the gateway
//! (tests/windows_gateway/stand_in.rs): both are Windows processes, here run
//! under Wine 8 by tests/support/cross-check.sh, natively on Windows.
//! Discovery by the gateway's Windows lock, vitals against what the Windows
//! APIs report for the stand-in, connections by state on its port, and the
//! hang verdict when it stops answering while its port still LISTENs.
//!
//! Under Wine every socket's owner pid is 0 (Wine's sockets belong to
//! wineserver), so which sockets the stand-in owns (its outbound connection)
//! is asserted only outside Wine.
#![cfg(windows)]

mod common;
#[path = "windows_gateway/stand_in.rs"]
mod stand_in;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;
use stand_in::StandIn;

const G: &[(&str, &str)] = &[("gateway", "win")];

/// Not a check: the stand-in's entry point when this binary is started as
/// one ([`StandIn::start`]); otherwise it passes at once.
#[test]
fn stand_in_gateway() {
    stand_in::run_if_asked();
}

#[test]
fn exporter_watches_a_windows_gateway() {
    let wine = winapi::under_wine();
    eprintln!("under Wine: {wine}");
    let state = TempDir::new("win-state");
    // A dependency the stand-in connects out to and that holds it.
    let dependency = TcpListener::bind("127.0.0.1:0").unwrap();
    let dep_addr = dependency.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        (0..)
            .map_while(|_| dependency.accept().ok())
            .collect::<Vec<_>>()
    });
    let mut gw = StandIn::start(state.path(), &dep_addr);
    let pid = gw.pid();
    let locks: Vec<_> = std::fs::read_dir(state.path().join("tmp").join("openclaw"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        locks.len() == 1 && locks[0].starts_with("gateway.") && locks[0].ends_with(".lock"),
        "{locks:?}"
    );

    // Connections the test holds open to the gateway's port.
    const HELD: usize = 3;
    let held: Vec<TcpStream> = (0..HELD)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.port)).unwrap())
        .collect();

    let exp = Harness::exporter()
        .name("win")
        .port(gw.port)
        .state_dir(state.path())
        .fast()
        .args(&[
            "--collect.latency.interval",
            "500ms",
            "--probe.timeout",
            "1s",
        ])
        .start();

    // Discovery: by its lock, this very process.
    exp.wait_eq("gateway found", names::PROCESS_UP.name(), G, 1.0);
    exp.wait_eq(
        "found by its lock",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "win"), ("method", "lock_file")],
        1.0,
    );
    let found = exp.wait_log("gateway process found");
    assert!(found.contains(&format!(" pid={pid}")), "{found}");

    // Vitals against the Windows APIs, read for the stand-in here. Each is
    // compared until the exporter's sample and the truth read after the
    // scrape agree: both move with every probe the stand-in answers.
    let created = winapi::creation_unix_millis(pid) as f64 / 1000.0;
    let start = val(&exp.scrape(), names::PROCESS_START_TIME_SECONDS.name(), G);
    assert!((start - created).abs() < 0.01, "{start} vs {created}");
    exp.wait("resident memory = working set (5%)", |s| {
        let got = s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)?;
        let truth = winapi::working_set(pid) as f64;
        eprintln!("resident {got} vs working set {truth}");
        ((got - truth).abs() <= truth * 0.05).then_some(())
    });
    exp.wait("threads = Toolhelp's count", |s| {
        let got = s.get(names::PROCESS_THREADS.name(), G)?;
        let truth = winapi::thread_count(pid) as f64;
        eprintln!("threads {got} vs {truth}");
        (got == truth).then_some(())
    });
    // Wine 8 counts no handles of another process (GetProcessHandleCount
    // gives 0): the exporter then leaves the series out, never 0.
    if wine && winapi::handle_count(pid) == 0 {
        eprintln!("under Wine: no handle count for another process; open fds must be absent");
        let s = exp.scrape();
        assert_eq!(s.get(names::PROCESS_OPEN_FDS.name(), G), None, "{}", s.1);
    } else {
        exp.wait("open fds = handle count (3)", |s| {
            let got = s.get(names::PROCESS_OPEN_FDS.name(), G)?;
            let truth = winapi::handle_count(pid) as f64;
            eprintln!("open fds {got} vs handles {truth}");
            ((got - truth).abs() <= 3.0).then_some(())
        });
    }

    // Connections by state on its port: the ones held here, and its listener.
    let inbound = |state: &'static str| {
        [
            ("gateway", "win"),
            ("direction", "inbound"),
            ("state", state),
        ]
    };
    let t = Instant::now();
    wait(&exp, "the held connections, established", |s| {
        let got = s.get(names::TCP_CONNECTIONS.name(), &inbound("established"))?;
        eprintln!("inbound established {got}, {HELD} held");
        (got == HELD as f64).then_some(())
    });
    eprintln!("connections counted after {:?}", t.elapsed());
    assert_eq!(
        val(
            &exp.scrape(),
            names::TCP_CONNECTIONS.name(),
            &inbound("listen")
        ),
        1.0
    );
    let outbound = [
        ("gateway", "win"),
        ("direction", "outbound"),
        ("state", "established"),
    ];
    if wine {
        eprintln!("under Wine: socket owners are pid 0, the outbound connection is not asserted");
    } else {
        wait(&exp, "its outbound connection", |s| {
            (s.get(names::TCP_CONNECTIONS.name(), &outbound) == Some(1.0)).then_some(())
        });
    }

    // The hang: alive, its port LISTENing, no answer.
    let live = [("gateway", "win"), ("endpoint", "live")];
    exp.wait_eq(
        "a good liveness probe",
        names::PROBE_SUCCESS.name(),
        &live,
        1.0,
    );
    assert_eq!(val(&exp.scrape(), names::HUNG.name(), G), 0.0);
    gw.hang();
    let t = Instant::now();
    wait(&exp, "hung", |s| {
        (s.get(names::HUNG.name(), G) == Some(1.0)).then_some(())
    });
    eprintln!("hung after {:?}", t.elapsed());
    let s = exp.scrape();
    assert_eq!(val(&s, names::PROBE_SUCCESS.name(), &live), 0.0);
    assert_eq!(val(&s, names::PROCESS_UP.name(), G), 1.0);
    assert_eq!(
        s.get(names::TCP_CONNECTIONS.name(), &inbound("listen")),
        Some(1.0)
    );
    // The held connections were never answered nor closed.
    for mut c in held {
        c.set_nonblocking(true).unwrap();
        let r = c.read(&mut [0u8; 1]);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{r:?}"
        );
    }
    drop(exp);
    drop(gw);
    std::thread::sleep(Duration::from_millis(100));
}

/// Scrape until `f` accepts, for up to 3 minutes: under Wine the TCP table,
/// which the connection counts and the hang verdict (is the port still
/// LISTENing?) read, is slow. Measured with ~800 host sockets (Wine lists
/// the host's) and the 2 cores shared: counts after 15 s, hung after 76 s.
fn wait<T>(exp: &Exporter, what: &str, mut f: impl FnMut(&Scrape) -> Option<T>) -> T {
    wait_for(Duration::from_secs(180), what, || f(&exp.scrape()))
}

fn val(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.get(name, labels)
        .unwrap_or_else(|| panic!("{name} {labels:?} missing in\n{}", s.1))
}

/// Ground truth from the Windows APIs, each behind a small safe function.
mod winapi {
    use std::ffi::c_void;
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

    use windows_sys::Win32::Foundation::{FILETIME, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
    };
    use windows_sys::Win32::System::ProcessStatus::{
        GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS,
    };
    use windows_sys::Win32::System::Threading::{
        GetProcessHandleCount, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };

    // kernel32, declared here: windows-sys's LibraryLoader feature is not
    // in Cargo.toml for two functions of a test.
    #[link(name = "kernel32")]
    extern "system" {
        fn GetModuleHandleA(name: *const u8) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const u8) -> *const c_void;
    }

    /// Whether this runs under Wine: its ntdll exports `wine_get_version`.
    pub fn under_wine() -> bool {
        // SAFETY: NUL-terminated names; ntdll is loaded in every process; a
        // null result only means "not there".
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null()
                && !GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_null()
        }
    }

    fn open(pid: u32) -> OwnedHandle {
        // SAFETY: no pointers; a null result is checked.
        let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        assert!(
            !h.is_null(),
            "OpenProcess({pid}): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh handle that nothing else owns.
        unsafe { OwnedHandle::from_raw_handle(h) }
    }

    /// Creation time, Unix milliseconds, as the gateway writes `startTime`.
    pub fn creation_unix_millis(pid: u32) -> u64 {
        let p = open(pid);
        let mut t = [FILETIME::default(); 4];
        let [c, e, k, u] = &mut t;
        // SAFETY: a process handle and four valid out-pointers.
        assert_ne!(unsafe { GetProcessTimes(p.as_raw_handle(), c, e, k, u) }, 0);
        let ticks = (u64::from(t[0].dwHighDateTime) << 32) | u64::from(t[0].dwLowDateTime);
        // 100 ns intervals since 1601-01-01 to Unix ms, as node's reader does.
        ticks / 10_000 - 11_644_473_600_000
    }

    /// `GetProcessMemoryInfo`'s working set.
    pub fn working_set(pid: u32) -> u64 {
        let p = open(pid);
        let mut m = PROCESS_MEMORY_COUNTERS {
            cb: size_of::<PROCESS_MEMORY_COUNTERS>() as u32,
            ..Default::default()
        };
        // SAFETY: a process handle and a counters struct of the size passed.
        assert_ne!(
            unsafe { GetProcessMemoryInfo(p.as_raw_handle(), &mut m, m.cb) },
            0
        );
        m.WorkingSetSize as u64
    }

    pub fn handle_count(pid: u32) -> u32 {
        let p = open(pid);
        let mut n = 0;
        // SAFETY: a process handle and a valid out-pointer.
        assert_ne!(
            unsafe { GetProcessHandleCount(p.as_raw_handle(), &mut n) },
            0
        );
        n
    }

    /// The threads a Toolhelp32 thread snapshot lists for `pid`.
    pub fn thread_count(pid: u32) -> u32 {
        // SAFETY: no pointers; INVALID_HANDLE_VALUE is checked.
        let snap = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
        assert_ne!(snap, INVALID_HANDLE_VALUE);
        // SAFETY: a fresh handle that nothing else owns.
        let snap = unsafe { OwnedHandle::from_raw_handle(snap) };
        let mut e = THREADENTRY32 {
            dwSize: size_of::<THREADENTRY32>() as u32,
            ..Default::default()
        };
        let mut n = 0;
        // SAFETY: a snapshot handle and an entry whose dwSize is set.
        let mut more = unsafe { Thread32First(snap.as_raw_handle(), &mut e) } != 0;
        while more {
            n += u32::from(e.th32OwnerProcessID == pid);
            // SAFETY: as above.
            more = unsafe { Thread32Next(snap.as_raw_handle(), &mut e) } != 0;
        }
        n
    }
}
