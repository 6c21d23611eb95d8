//! One view of the process table, shared by every gateway and collector.
//!
//! Discovery (a process with the gateway's title) and the lifecycle
//! collector (instances: titled processes whose environment names the state
//! dir) both need every pid and its title; where the OS does not show a
//! process's title as its name ([`crate::platform::TITLE_IS_NAME`]: macOS,
//! Windows), its command line too; lock files, the pid each process has in
//! its own pid namespace (a gateway in a container records that one). One
//! [`ProcessView`], made once by
//! the exporter, lists the pids at most once per `max_age` (half the
//! connections interval) however many gateways read it: the samplers of all
//! gateways tick on the same grid, so the first one of a round takes the
//! snapshot and the others read it. Only the search for the successor of a
//! gateway that just went away asks for a younger one (at most one a second,
//! for a few seconds).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::discovery::is_gateway_command;
use crate::platform::{Pid, Platform, TITLE_IS_NAME};

/// A process's environment, as [`Platform::environ`] reads it.
pub type Environ = Arc<Vec<(String, String)>>;

/// Titled processes by the state dir their environment names.
type ByStateDir = HashMap<PathBuf, Vec<Pid>>;

/// What a snapshot knows of a process to tell a gateway.
#[derive(Debug, Clone, Default, PartialEq)]
struct Seen {
    /// The name the OS shows ([`Platform::title`]).
    title: Option<String>,
    /// Its parent, where the platform reads it with the title
    /// ([`Platform::title_and_parent`]).
    parent: Option<Pid>,
    /// Its command line, where the title is not the name.
    cmdline: Option<Arc<Vec<String>>>,
}

impl Seen {
    fn read(p: &dyn Platform, pid: Pid, by_command: bool) -> Seen {
        let (title, parent) = p.title_and_parent(pid);
        Seen {
            title,
            parent,
            cmdline: by_command.then(|| p.cmdline(pid).map(Arc::new)).flatten(),
        }
    }

    /// Whether the process has the title whose [`crate::platform::title_key`]
    /// is `key`: by its name, or by its command line.
    fn titled(&self, key: &str) -> bool {
        self.title.as_deref() == Some(key)
            || self
                .cmdline
                .as_deref()
                .is_some_and(|args| is_gateway_command(args, key))
    }
}

/// Whether `pid` has the title whose [`crate::platform::title_key`] is `key`
/// ([`Snapshot::titled`] for one process, read now).
pub fn has_title(p: &dyn Platform, pid: Pid, key: &str) -> bool {
    Seen::read(p, pid, !TITLE_IS_NAME).titled(key)
}

/// The process table as it was when [`ProcessView::snapshot`] listed it.
#[derive(Debug)]
pub struct Snapshot {
    pub taken: Instant,
    /// Every pid, ascending, with what tells a gateway.
    titles: Vec<(Pid, Seen)>,
    /// (pid, its pid in the nested pid namespace it runs in) of the processes
    /// in such a namespace ([`Platform::namespaced_pid`]).
    nested: Vec<(Pid, Pid)>,
    /// Environments read so far from this snapshot, by pid.
    environs: Mutex<HashMap<Pid, Option<Environ>>>,
    /// State dirs resolved so far from those environments, by pid.
    state_dirs: Mutex<HashMap<Pid, Option<Arc<PathBuf>>>>,
    /// The titled processes by the state dir their environment names, by
    /// title ([`Snapshot::titled_in`]).
    by_state_dir: Mutex<HashMap<String, Arc<ByStateDir>>>,
    /// The children of each listed process, from their parents
    /// ([`Snapshot::descendants`]), made on first use.
    children: std::sync::OnceLock<HashMap<Pid, Vec<Pid>>>,
}

impl Snapshot {
    /// Every pid, ascending.
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.titles.iter().map(|(pid, _)| *pid)
    }

    /// The pids whose title is `key` ([`crate::platform::title_key`]),
    /// ascending: by the name the OS shows, or, where that is not the title
    /// ([`TITLE_IS_NAME`]), by the command line ([`is_gateway_command`]).
    pub fn titled(&self, key: &str) -> Vec<Pid> {
        self.titles
            .iter()
            .filter(|(_, seen)| seen.titled(key))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// All descendants of `pid`, children first, from the parents listed in
    /// this snapshot: every collector of every gateway asks for its workers
    /// each round, and the listing already has them, where
    /// [`Platform::descendants`] reads the children of each of the
    /// process's threads (Linux) anew. A process started since the snapshot
    /// shows in the next one. Read from the platform instead when the
    /// snapshot has no parent for `pid` (not listed yet, or a platform that
    /// reads no parents).
    pub fn descendants(&self, p: &dyn Platform, pid: Pid) -> Vec<Pid> {
        let listed = self.titles.binary_search_by_key(&pid, |(q, _)| *q);
        if !listed.is_ok_and(|i| self.titles[i].1.parent.is_some()) {
            return p.descendants(pid);
        }
        let children = self.children.get_or_init(|| {
            let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
            for (child, seen) in &self.titles {
                if let Some(parent) = seen.parent.filter(|parent| parent != child) {
                    children.entry(parent).or_default().push(*child);
                }
            }
            children
        });
        let mut out: Vec<Pid> = Vec::new();
        let mut next = 0;
        let mut parent = pid;
        loop {
            for &child in children.get(&parent).into_iter().flatten() {
                if child != pid && !out.contains(&child) {
                    out.push(child);
                }
            }
            let Some(&child) = out.get(next) else { break };
            parent = child;
            next += 1;
        }
        out
    }

    /// The processes whose pid in their own, nested pid namespace is
    /// `inner`: the processes a lock file recording `inner` may mean.
    pub fn namespaced(&self, inner: Pid) -> impl Iterator<Item = Pid> + '_ {
        self.nested
            .iter()
            .filter(move |(_, n)| *n == inner)
            .map(|(pid, _)| *pid)
    }

    /// The environment of `pid`, read once per snapshot however many
    /// gateways ask; a process listed for longer than [`ProcessView::YOUNG`]
    /// keeps what the snapshot before read, read again with its title every
    /// [`ProcessView::REFRESH`]th snapshot.
    pub fn environ(&self, p: &dyn Platform, pid: Pid) -> Option<Environ> {
        let mut environs = self.environs.lock().unwrap_or_else(|e| e.into_inner());
        environs
            .entry(pid)
            .or_insert_with(|| p.environ(pid).map(Arc::new))
            .clone()
    }

    /// The state dir the environment of `pid` names, resolved as the gateway
    /// resolves its own ([`crate::config::state_dir_in`]), once per snapshot:
    /// every gateway's lifecycle sample asks it of every titled process, and
    /// resolving looks for the legacy state dirs on disk.
    pub fn state_dir(&self, p: &dyn Platform, pid: Pid) -> Option<Arc<PathBuf>> {
        if let Some(known) = self.lock_state_dirs().get(&pid) {
            return known.clone();
        }
        let dir = self
            .environ(p, pid)
            .and_then(|env| crate::config::state_dir_in(&env, crate::os::Os::CURRENT))
            .map(Arc::new);
        self.lock_state_dirs().insert(pid, dir.clone());
        dir
    }

    /// Copy what this snapshot read of `pid` into the maps of the next one.
    fn carry(
        &self,
        pid: Pid,
        environs: &mut HashMap<Pid, Option<Environ>>,
        state_dirs: &mut HashMap<Pid, Option<Arc<PathBuf>>>,
    ) {
        let env = self.environs.lock().unwrap_or_else(|e| e.into_inner());
        environs.extend(env.get(&pid).map(|e| (pid, e.clone())));
        state_dirs.extend(self.lock_state_dirs().get(&pid).map(|d| (pid, d.clone())));
    }

    /// The pids titled `key` ([`Snapshot::titled`]) whose environment names
    /// `state_dir` ([`Snapshot::state_dir`]), ascending. Every gateway's
    /// lifecycle sample asks: the titled processes are sorted by state dir
    /// once per snapshot, not looked at again for each gateway.
    pub fn titled_in(&self, p: &dyn Platform, key: &str, state_dir: &Path) -> Vec<Pid> {
        let index = {
            let mut all = self.by_state_dir.lock().unwrap_or_else(|e| e.into_inner());
            match all.get(key) {
                Some(index) => index.clone(),
                None => {
                    let mut index = ByStateDir::new();
                    for pid in self.titled(key) {
                        if let Some(dir) = self.state_dir(p, pid) {
                            index.entry((*dir).clone()).or_default().push(pid);
                        }
                    }
                    let index = Arc::new(index);
                    all.insert(key.to_string(), index.clone());
                    index
                }
            }
        };
        index.get(state_dir).cloned().unwrap_or_default()
    }

    fn lock_state_dirs(&self) -> std::sync::MutexGuard<'_, HashMap<Pid, Option<Arc<PathBuf>>>> {
        self.state_dirs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The process table, listed at most once per `max_age` for every reader.
#[derive(Debug)]
pub struct ProcessView {
    platform: Arc<dyn Platform>,
    max_age: Duration,
    state: Mutex<ViewState>,
}

#[derive(Debug, Default)]
struct ViewState {
    current: Option<Arc<Snapshot>>,
    /// What is known of each pid listed.
    known: HashMap<Pid, Known>,
    snapshots: u32,
    /// Read command lines too ([`TITLE_IS_NAME`] false).
    by_command: bool,
}

impl ProcessView {
    /// How long a snapshot serves when no interval says otherwise (the
    /// one-shot commands).
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_millis(500);

    /// Titles and namespaced pids are read again each `REFRESH`th snapshot,
    /// in case a pid was reused between two snapshots: a snapshot costs a
    /// listing of the pids and the titles of new ones, not the title of
    /// every process.
    const REFRESH: u32 = 6;

    /// A process renames itself early (the gateway turns from `node` into
    /// `openclaw-gateway` while it starts, on macOS in its command line): the
    /// title (and command line) of a pid first listed
    /// less than this long ago is read again on every snapshot, so a new
    /// gateway is seen under its title one snapshot after it takes it.
    const YOUNG: Duration = Duration::from_secs(60);

    pub fn new(platform: Arc<dyn Platform>, max_age: Duration) -> ProcessView {
        ProcessView::reading_commands(platform, max_age, !TITLE_IS_NAME)
    }

    /// A view that reads command lines (`by_command`) or not, whatever the
    /// OS: the tests of both ways on any.
    pub(crate) fn reading_commands(
        platform: Arc<dyn Platform>,
        max_age: Duration,
        by_command: bool,
    ) -> ProcessView {
        ProcessView {
            platform,
            max_age,
            state: Mutex::new(ViewState {
                by_command,
                ..ViewState::default()
            }),
        }
    }

    /// How long a snapshot serves: half the connections interval in the
    /// exporter.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    pub fn platform(&self) -> &Arc<dyn Platform> {
        &self.platform
    }

    /// The process table, listed now unless a snapshot younger than
    /// `max_age` exists. Readers that come while it is listed wait for it.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_within(self.max_age)
    }

    /// The process table, at most `age` old (and at most `max_age`).
    pub fn snapshot_within(&self, age: Duration) -> Arc<Snapshot> {
        let age = age.min(self.max_age);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = st.current.as_ref().filter(|s| s.taken.elapsed() < age) {
            return s.clone();
        }
        let snap = Arc::new(st.list(&*self.platform));
        st.current = Some(snap.clone());
        snap
    }
}

/// One pid as listed.
#[derive(Debug)]
struct Known {
    seen: Seen,
    /// Its pid in a nested pid namespace: fixed for the life of a process.
    nested: Option<Pid>,
    first: Instant,
}

impl ViewState {
    fn list(&mut self, p: &dyn Platform) -> Snapshot {
        let now = Instant::now();
        let refresh = self.snapshots.is_multiple_of(ProcessView::REFRESH);
        self.snapshots = self.snapshots.wrapping_add(1);
        let mut pids = p.pids();
        pids.sort_unstable();
        pids.dedup();
        let mut known = HashMap::with_capacity(pids.len());
        let mut listed = Vec::with_capacity(pids.len());
        let mut nested = Vec::new();
        let (mut environs, mut state_dirs) = (HashMap::new(), HashMap::new());
        let before = self.current.take();
        // (index in `listed`, pid) of the processes kept as they were.
        let mut carried = Vec::new();
        for pid in pids {
            let read = || Seen::read(p, pid, self.by_command);
            let k = match self.known.remove(&pid) {
                Some(k) if !refresh && now - k.first >= ProcessView::YOUNG => {
                    // Kept as it was, with what the last snapshot read of it.
                    carried.push((listed.len(), pid));
                    if let Some(b) = &before {
                        b.carry(pid, &mut environs, &mut state_dirs);
                    }
                    k
                }
                Some(k) if !refresh => Known { seen: read(), ..k },
                Some(Known { first, .. }) => Known {
                    seen: read(),
                    nested: p.namespaced_pid(pid),
                    first,
                },
                None => Known {
                    seen: read(),
                    nested: p.namespaced_pid(pid),
                    first: now,
                },
            };
            listed.push((pid, k.seen.clone()));
            nested.extend(k.nested.map(|n| (pid, n)));
            known.insert(pid, k);
        }
        // A parent is fixed for the life of a process until that parent
        // exits (the orphan goes to init or a subreaper): a process kept as
        // it was whose parent is no longer listed has its parent read again.
        // A parent's pid taken by a new process between two listings is
        // seen at the next refresh, as a reused pid's title is.
        for (i, pid) in carried {
            let Some(parent) = listed[i].1.parent.filter(|&parent| parent > 0) else {
                continue;
            };
            if known.contains_key(&parent) {
                continue;
            }
            let fresh = Seen::read(p, pid, self.by_command);
            if let Some(k) = known.get_mut(&pid) {
                k.seen = fresh.clone();
            }
            listed[i].1 = fresh;
        }
        // Pids no longer listed are dropped with the old map.
        self.known = known;
        Snapshot {
            taken: now,
            titles: listed,
            nested,
            environs: Mutex::new(environs),
            state_dirs: Mutex::new(state_dirs),
            by_state_dir: Mutex::default(),
            children: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::{FakePlatform, FakeProcess};
    use crate::platform::{Caps, Identity};

    fn process(pid: Pid, title: &str) -> FakeProcess {
        FakeProcess {
            id: Identity { pid, start: 1 },
            title: title.into(),
            environ: vec![("HOME".into(), format!("/home/{pid}"))],
            ..Default::default()
        }
    }

    #[test]
    fn readers_within_max_age_share_one_listing() {
        let fake = Arc::new(FakePlatform::new(
            Caps::ALL,
            vec![process(10, "node"), process(11, "openclaw-gatewa")],
        ));
        let view = ProcessView::new(fake.clone(), Duration::from_secs(60));
        let a = view.snapshot();
        let b = view.snapshot();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(fake.pids_calls(), 1);
        assert_eq!(a.titled("openclaw-gatewa"), [11]);
        assert_eq!(a.pids().collect::<Vec<_>>(), [10, 11]);
        // The environment is read once per snapshot.
        let home = a.environ(&*fake, 10).unwrap();
        assert_eq!(home[0].1, "/home/10");
        fake.processes.lock().unwrap()[0].environ.clear();
        assert_eq!(b.environ(&*fake, 10), Some(home));
        // So is the state dir it names, from the first reading.
        let dir = a.state_dir(&*fake, 11).expect("11 has HOME");
        assert_eq!(*dir, std::path::Path::new("/home/11/.openclaw"));
        fake.processes.lock().unwrap()[1].environ.clear();
        assert_eq!(b.state_dir(&*fake, 11), Some(dir));
        // A reader that wants a younger one gets a new listing.
        assert!(!Arc::ptr_eq(&a, &view.snapshot_within(Duration::ZERO)));
        assert_eq!(fake.pids_calls(), 2);
    }

    /// A gateway starts as `node` and renames itself: the next snapshot
    /// shows its new title, and a new pid is listed at once.
    #[test]
    fn a_renamed_or_new_process_shows_in_the_next_snapshot() {
        let fake = Arc::new(FakePlatform::new(Caps::ALL, vec![process(10, "node")]));
        let view = ProcessView::new(fake.clone(), Duration::ZERO);
        assert!(view.snapshot().titled("openclaw-gatewa").is_empty());
        fake.processes.lock().unwrap()[0].title = "openclaw-gatewa".into();
        fake.processes
            .lock()
            .unwrap()
            .push(process(12, "openclaw-gatewa"));
        assert_eq!(view.snapshot().titled("openclaw-gatewa"), [10, 12]);
        assert_eq!(fake.pids_calls(), 2);
    }

    /// Three gateways in one exporter: their process, identity and lifecycle
    /// collectors find each gateway by its title and count its instances
    /// from one listing of the process table per round, not one per gateway.
    /// A process's pid in its nested pid namespace is read when it is first
    /// listed; a pid reused by a process in another namespace is seen by
    /// the next refresh at the latest.
    #[test]
    fn nested_pids_are_listed_and_refreshed() {
        let mut gateway = process(5583, "openclaw-gatewa");
        gateway.nested = Some(1);
        let fake = Arc::new(FakePlatform::new(
            Caps::ALL,
            vec![process(10, "node"), gateway],
        ));
        let view = ProcessView::new(fake.clone(), Duration::ZERO);
        let nested = |inner| view.snapshot().namespaced(inner).collect::<Vec<_>>();
        assert_eq!(nested(1), [5583]);
        fake.processes.lock().unwrap()[1].nested = Some(7);
        let refreshed = (0..ProcessView::REFRESH).any(|_| nested(7) == [5583]);
        assert!(refreshed);
        assert!(nested(1).is_empty());
    }

    fn child(pid: Pid, parent: Pid) -> FakeProcess {
        FakeProcess {
            parent: Some(parent),
            ..process(pid, "node")
        }
    }

    /// A fake platform that reads each process's parent with its title, as
    /// Linux's does.
    fn listing_parents(processes: Vec<FakeProcess>) -> Arc<FakePlatform> {
        let mut fake = FakePlatform::new(Caps::ALL, processes);
        fake.lists_parents = true;
        Arc::new(fake)
    }

    /// A gateway's workers, and theirs, come from the parents the listing
    /// read, not from the platform; a process not listed yet, or a
    /// platform that lists no parents, is asked instead.
    #[test]
    fn descendants_come_from_the_listed_parents() {
        let fake = listing_parents(vec![
            process(1, "init"),
            child(10, 1),
            child(11, 10),
            child(12, 11),
            child(13, 10),
            child(20, 1),
        ]);
        let view = ProcessView::new(fake.clone(), Duration::from_secs(60));
        let snap = view.snapshot();
        assert_eq!(snap.descendants(&*fake, 10), [11, 13, 12]);
        assert_eq!(snap.descendants(&*fake, 12), Vec::<Pid>::new());
        assert_eq!(snap.descendants(&*fake, 20), Vec::<Pid>::new());
        assert_eq!(fake.descendants_calls(), 0);
        // Not listed yet: the platform reads it now.
        fake.processes.lock().unwrap().push(child(30, 1));
        fake.processes.lock().unwrap().push(child(31, 30));
        assert_eq!(snap.descendants(&*fake, 30), [31]);
        assert_eq!(fake.descendants_calls(), 1);

        let plain = Arc::new(FakePlatform::new(
            Caps::ALL,
            vec![process(10, "n"), child(11, 10)],
        ));
        let view = ProcessView::new(plain.clone(), Duration::from_secs(60));
        assert_eq!(view.snapshot().descendants(&*plain, 10), [11]);
        assert_eq!(plain.descendants_calls(), 1);
    }

    /// A process kept as it was keeps its parent until that parent exits:
    /// then it is read again (the orphan went to init). A parent's pid taken
    /// by a new process between two listings is seen at the next refresh.
    #[test]
    fn an_orphan_is_read_again_when_its_parent_goes() {
        let fake = listing_parents(vec![
            process(1, "init"),
            child(10, 1),
            child(11, 10),
            child(12, 11),
        ]);
        let view = ProcessView::new(fake.clone(), Duration::ZERO);
        assert_eq!(view.snapshot().descendants(&*fake, 10), [11, 12]);
        // Let them all grow old, past a refresh: kept as they are from now on.
        let mut state = view.state.lock().unwrap();
        for k in state.known.values_mut() {
            k.first -= ProcessView::YOUNG;
        }
        state.snapshots = 1;
        drop(state);
        // 11 exits; the kernel hands 12 to init.
        {
            let mut table = fake.processes.lock().unwrap();
            table.retain(|p| p.id.pid != 11);
            table.iter_mut().find(|p| p.id.pid == 12).unwrap().parent = Some(1);
        }
        let snap = view.snapshot();
        assert_eq!(snap.descendants(&*fake, 10), Vec::<Pid>::new());
        assert_eq!(snap.descendants(&*fake, 1), [10, 12]);
        // 12 exits, init takes its child 13, and 12's pid goes to a new
        // worker of 10, all between two listings.
        fake.processes.lock().unwrap().push(child(13, 12));
        let mut state = view.state.lock().unwrap();
        for k in state.known.values_mut() {
            k.first -= ProcessView::YOUNG;
        }
        drop(state);
        assert_eq!(view.snapshot().descendants(&*fake, 1), [10, 12, 13]);
        {
            let mut table = fake.processes.lock().unwrap();
            table.retain(|p| p.id.pid != 12);
            table.iter_mut().find(|p| p.id.pid == 13).unwrap().parent = Some(1);
            table.push(child(12, 10));
        }
        let fixed = (0..=ProcessView::REFRESH).any(|_| {
            let snap = view.snapshot();
            snap.descendants(&*fake, 10) == [12] && snap.descendants(&*fake, 1) == [10, 13, 12]
        });
        assert!(fixed, "seen by the next refresh");
        assert_eq!(fake.descendants_calls(), 0);
    }

    /// Three gateways in one exporter: their process, identity and lifecycle
    /// collectors find each gateway by its title and count its instances
    /// from one listing of the process table per round, not one per gateway.
    #[test]
    fn three_gateways_list_the_process_table_once_per_round() {
        let mut config = crate::config::build(crate::config::Intervals::default(), vec![]).unwrap();
        config.intervals.connections = Duration::from_millis(200);
        let one = config.gateways.remove(0);
        let mut table = Vec::new();
        for i in 0..3u16 {
            let mut spec = one.clone();
            spec.name = format!("gw{i}");
            spec.port = 18790 + i;
            spec.url_port = spec.port;
            spec.pid_file = None;
            spec.state_dir = format!("/nonexistent/ocgx-view/{i}").into();
            let pid = 100 + Pid::from(i);
            table.push(FakeProcess {
                id: Identity { pid, start: 1 },
                title: spec.comm().into(),
                environ: vec![(
                    "OPENCLAW_STATE_DIR".into(),
                    spec.state_dir.display().to_string(),
                )],
                listens: vec![spec.port],
                ..Default::default()
            });
            config.gateways.push(spec);
        }
        table.push(process(99, "node"));
        let fake = Arc::new(FakePlatform::new(Caps::ALL, table));
        let mut exporter = crate::exporter::Exporter::with_platform(&config, fake.clone());
        let blocking = |c: &str| ["process", "identity", "lifecycle"].contains(&c);
        exporter.sample_collectors(blocking);
        assert_eq!(fake.pids_calls(), 1, "one listing for three gateways");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &exporter.registry).unwrap();
        for i in 0..3 {
            let gw = format!("gateway=\"gw{i}\"");
            for line in [
                format!("openclaw_gateway_instances{{{gw}}} 1"),
                format!("openclaw_gateway_discovery_method{{{gw},method=\"process_title\"}} 1"),
            ] {
                assert!(
                    text.lines().any(|l| l.starts_with(&line)),
                    "{line} in {text}"
                );
            }
        }
        // The next round (past half the connections interval) lists it again, once.
        std::thread::sleep(Duration::from_millis(120));
        exporter.sample_collectors(blocking);
        assert_eq!(fake.pids_calls(), 2, "one listing per round");
    }
}
