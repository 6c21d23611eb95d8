//! A scripted platform: a process table and listeners set by a test, for
//! collector tests that need no real process (as node_exporter's fixtures).
//! Only what a test scripts exists; everything else is absent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{
    Caps, ExitWatch, FdTypes, FileId, Identity, ListenCounters, Owned, PartialErrors, Pid,
    Platform, ProcError, SocketReader, Tally, Vitals,
};
use crate::tcp::Source;

/// One scripted process.
#[derive(Debug, Clone, Default)]
pub struct FakeProcess {
    pub id: Identity,
    pub parent: Option<Pid>,
    pub title: String,
    pub cmdline: Vec<String>,
    pub environ: Vec<(String, String)>,
    pub vitals: Vitals,
    /// Ports it holds a LISTEN socket on.
    pub listens: Vec<u16>,
    /// Its pid in a nested pid namespace ([`Platform::namespaced_pid`]).
    pub nested: Option<Pid>,
}

#[derive(Debug)]
pub struct FakePlatform {
    pub caps: Caps,
    pub processes: Mutex<Vec<FakeProcess>>,
    /// Whether [`Platform::title_and_parent`] gives the parent, as Linux's
    /// does (off: the default, title only).
    pub lists_parents: bool,
    /// Times the whole process table was listed ([`Platform::pids`]).
    pids_calls: AtomicUsize,
    /// Times [`Platform::descendants`] was asked.
    descendants_calls: AtomicUsize,
}

impl FakePlatform {
    pub fn new(caps: Caps, processes: Vec<FakeProcess>) -> FakePlatform {
        FakePlatform {
            caps,
            processes: Mutex::new(processes),
            lists_parents: false,
            pids_calls: AtomicUsize::new(0),
            descendants_calls: AtomicUsize::new(0),
        }
    }

    /// Times [`Platform::descendants`] was asked so far.
    pub fn descendants_calls(&self) -> usize {
        self.descendants_calls.load(Ordering::Relaxed)
    }

    /// Times the whole process table was listed so far.
    pub fn pids_calls(&self) -> usize {
        self.pids_calls.load(Ordering::Relaxed)
    }

    fn with<T>(&self, pid: Pid, f: impl FnOnce(&FakeProcess) -> T) -> Option<T> {
        let table = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        table.iter().find(|p| p.id.pid == pid).map(f)
    }

    fn listeners(&self, port: u16) -> Vec<Identity> {
        let table = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        table
            .iter()
            .filter(|p| p.listens.contains(&port))
            .map(|p| p.id)
            .collect()
    }
}

#[derive(Debug)]
struct Gone;

impl ExitWatch for Gone {
    fn id(&self) -> Identity {
        Identity::default()
    }
    fn alive(&mut self) -> bool {
        false
    }
    fn wait_exit(&self, _: std::time::Duration) -> bool {
        false
    }
}

/// Counts only the LISTEN sockets of the scripted table, inbound.
struct FakeSockets(Vec<u16>);

impl SocketReader for FakeSockets {
    fn count(&mut self, port: u16, _: Option<Pid>, owned: Option<&Owned>) -> Result<Tally, String> {
        let mut tally = Tally::new(Source::Proc, port, owned.is_some());
        let n = self.0.iter().filter(|p| **p == port).count() as u64;
        tally.inbound.0[super::TcpState::Listen as usize - 1] = n;
        Ok(tally)
    }
    fn take_notices(&mut self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

impl Platform for FakePlatform {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn caps(&self) -> Caps {
        self.caps
    }
    fn pids(&self) -> Vec<Pid> {
        self.pids_calls.fetch_add(1, Ordering::Relaxed);
        let table = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        table.iter().map(|p| p.id.pid).collect()
    }
    fn identity(&self, pid: Pid) -> Result<Identity, ProcError> {
        self.with(pid, |p| p.id).ok_or(ProcError::Gone(pid))
    }
    fn title(&self, pid: Pid) -> Option<String> {
        self.with(pid, |p| p.title.clone())
    }
    fn title_and_parent(&self, pid: Pid) -> (Option<String>, Option<Pid>) {
        let parent = self
            .lists_parents
            .then(|| self.with(pid, |p| p.parent.unwrap_or(0)));
        (self.title(pid), parent.flatten())
    }
    fn namespaced_pid(&self, pid: Pid) -> Option<Pid> {
        self.with(pid, |p| p.nested).flatten()
    }
    fn cmdline(&self, pid: Pid) -> Option<Vec<String>> {
        self.with(pid, |p| p.cmdline.clone())
    }
    fn environ(&self, pid: Pid) -> Option<Vec<(String, String)>> {
        self.with(pid, |p| p.environ.clone())
    }
    fn exe_id(&self, _: Pid) -> Option<FileId> {
        None
    }
    fn descendants(&self, pid: Pid) -> Vec<Pid> {
        self.descendants_calls.fetch_add(1, Ordering::Relaxed);
        let table = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut queue = vec![pid];
        while let Some(parent) = queue.pop() {
            for p in table.iter().filter(|p| p.parent == Some(parent)) {
                if !out.contains(&p.id.pid) && p.id.pid != pid {
                    out.push(p.id.pid);
                    queue.push(p.id.pid);
                }
            }
        }
        out
    }
    fn vitals(&self, id: Identity, _: &mut PartialErrors) -> Result<Vitals, ProcError> {
        self.with(id.pid, |p| (p.id == id).then(|| p.vitals.clone()))
            .flatten()
            .ok_or(ProcError::Gone(id.pid))
    }
    fn memory(&self, pid: Pid) -> Result<(u64, u64), ProcError> {
        self.with(pid, |p| (p.vitals.resident_bytes, p.vitals.virtual_bytes))
            .ok_or(ProcError::Gone(pid))
    }
    fn watch(&self, _: Identity) -> Option<Box<dyn ExitWatch>> {
        self.caps
            .exit_watch
            .then(|| Box::new(Gone) as Box<dyn ExitWatch>)
    }
    fn socket_reader(&self) -> Box<dyn SocketReader> {
        let table = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        Box::new(FakeSockets(
            table.iter().flat_map(|p| p.listens.clone()).collect(),
        ))
    }
    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError> {
        owned.pids.insert(pid);
        Ok(None)
    }
    fn listening(&self, port: u16, _: Option<Pid>) -> bool {
        !self.listeners(port).is_empty()
    }
    fn holds_listener(&self, pid: Pid, port: u16) -> bool {
        self.listeners(port).iter().any(|id| id.pid == pid)
    }
    fn listen_owners(&self, port: u16, _: &[Identity]) -> Vec<Identity> {
        self.listeners(port)
    }
    fn host_listen_counters(&self) -> Result<ListenCounters, String> {
        Err("no host listen counters on the fake platform".into())
    }
    fn cgroup_memory_limit(&self, _: Pid) -> Option<u64> {
        None
    }
    fn host_memory_bytes(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::process::{ProcessMetrics, ProcessSampler, ProcessSlot};
    use crate::collector::Sampler;
    use crate::discovery::Target;
    use crate::metrics::Latest;
    use std::sync::Arc;

    fn exposition(registry: &prometheus_client::registry::Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    /// The gateway's process on its port, with one worker.
    fn gateway_and_worker() -> Vec<FakeProcess> {
        let gateway = FakeProcess {
            id: Identity {
                pid: 4242,
                start: 7,
            },
            title: super::super::title_key("openclaw-gateway").into(),
            vitals: Vitals {
                resident_bytes: 100 << 20,
                virtual_bytes: 1 << 30,
                cpu_seconds: 1.5,
                start_time_seconds: 1_700_000_000.0,
                threads: None,
                open_fds: Some(42),
                max_fds: None,
            },
            listens: vec![18789],
            ..Default::default()
        };
        let worker = FakeProcess {
            id: Identity {
                pid: 4243,
                start: 9,
            },
            parent: Some(4242),
            ..Default::default()
        };
        vec![gateway, worker]
    }

    /// The default gateway, watched through `fake`.
    fn target(caps: Caps) -> Arc<Target> {
        let fake: Arc<dyn Platform> = Arc::new(FakePlatform::new(caps, gateway_and_worker()));
        let mut spec = crate::config::build(crate::config::Intervals::default(), vec![])
            .unwrap()
            .gateways
            .remove(0);
        spec.state_dir = "/nonexistent/ocgx-fake".into();
        Arc::new(Target::with_platform(spec, fake))
    }

    /// A series the platform cannot read is absent, never zero: here the
    /// threads and the fd limit of a platform without them.
    #[test]
    fn what_the_platform_lacks_is_absent_not_zero() {
        let caps = Caps {
            threads: false,
            max_fds: false,
            ..Caps::ALL
        };
        let target = target(caps);
        let slot = Arc::new(ProcessSlot {
            target,
            latest: Latest::new(),
        });
        ProcessSampler::new(slot.clone()).sample().unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessMetrics(vec![slot])));
        let text = exposition(&registry);
        let has = |name: &str| text.lines().any(|l| l.starts_with(&format!("{name}{{")));
        let gw = "gateway=\"127.0.0.1:18789\"";
        let line = |l: String| assert!(text.lines().any(|t| t == l), "{l} in {text}");
        line(format!("openclaw_gateway_process_open_fds{{{gw}}} 42.0"));
        line(format!(
            "openclaw_gateway_process_cpu_seconds_total{{{gw}}} 1.5"
        ));
        line(format!("openclaw_gateway_process_children{{{gw}}} 1.0"));
        line(format!(
            "openclaw_gateway_discovery_method{{{gw},method=\"process_title\"}} 1.0"
        ));
        assert!(!has("openclaw_gateway_process_threads"), "{text}");
        assert!(!has("openclaw_gateway_process_max_fds"), "{text}");
    }

    /// A platform that cannot tell who listens on a port (macOS until its
    /// socket source) cannot judge "alive and listening": the hang verdict
    /// and the port-owner check are absent there, and present where it can.
    #[test]
    fn without_a_listener_lookup_hung_and_port_owner_are_absent() {
        use crate::collector::lifecycle::{LifecycleMetrics, LifecycleSampler};
        use crate::collector::liveness::{LivenessMetrics, LivenessSlot};
        use crate::probe::{Endpoint, ProbeStats};
        for listeners in [true, false] {
            let target = target(Caps {
                listeners,
                ..Caps::ALL
            });
            let name = target.spec.name.clone();
            target.resolve();
            let liveness = Arc::new(LivenessSlot {
                target: target.clone(),
                stats: Arc::new(ProbeStats::new(
                    &name,
                    Endpoint::Live,
                    std::time::Duration::from_secs(60),
                )),
                hung: Latest::new(),
            });
            liveness.hung.set(false);
            let lifecycle = Arc::new(Latest::new());
            LifecycleSampler::new(target.clone(), lifecycle.clone())
                .sample()
                .unwrap();
            let mut registry = prometheus_client::registry::Registry::default();
            registry.register_collector(Box::new(LivenessMetrics(vec![liveness])));
            registry.register_collector(Box::new(LifecycleMetrics(vec![(name, lifecycle)])));
            let text = exposition(&registry);
            let has = |n: &str| text.lines().any(|l| l.starts_with(&format!("{n}{{")));
            assert_eq!(has("openclaw_gateway_hung"), listeners, "{text}");
            assert_eq!(
                has("openclaw_gateway_port_owner_mismatch"),
                listeners,
                "{text}"
            );
            assert!(has("openclaw_gateway_instances"), "{text}");
        }
    }
}
