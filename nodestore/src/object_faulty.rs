//! [`FaultyObjectStore`]: an object store in memory that fails on demand,
//! for the crash tests of [`ObjectBackend`].
//!
//! What can go wrong with an object store, it does: once armed
//! ([`FaultyObjectStore::fail_after`]), every request fails, and a failing
//! write *may still land* (the request reached the store, its answer was
//! lost), decided by a seeded generator. Uploads under way in the
//! background then land or not independently of their order, so a part can
//! be stored while the one before it is not; a conditional superblock put
//! can land and leave the writer with a stale ETag. A
//! [`kill`](FaultyObjectStore::kill) (the process died) makes every later
//! request fail and land nothing. Objects that landed stay: an object store
//! loses nothing it acknowledged, so a crash is a kill then a heal.

use crate::{FormatError, ObjectBackend, ObjectOptions};
use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;

/// An in-memory object store that fails on demand; see the module
/// documentation. Cheap to clone: clones share the objects.
#[derive(Clone)]
pub struct FaultyObjectStore {
    inner: Arc<InMemory>,
    state: Arc<Mutex<FaultState>>,
}

struct FaultState {
    /// Requests left before every request fails; `None` when not armed.
    fail_after: Option<u64>,
    killed: bool,
    /// xorshift state deciding whether a failing write lands.
    rng: u64,
    requests: u64,
    /// Whether reads wait, once their fate is decided, until released.
    hold_gets: bool,
    /// Reads waiting so.
    gets_held: usize,
}

/// What the gate decided for one request.
enum Gate {
    Pass,
    /// Fail; a write lands first if `lands`.
    Fail {
        lands: bool,
    },
}

impl FaultyObjectStore {
    /// An empty store; `seed` decides which failing writes land.
    pub fn new(seed: u64) -> FaultyObjectStore {
        FaultyObjectStore {
            inner: Arc::new(InMemory::new()),
            state: Arc::new(Mutex::new(FaultState {
                fail_after: None,
                killed: false,
                rng: seed | 1,
                requests: 0,
                hold_gets: false,
                gets_held: 0,
            })),
        }
    }

    /// Opens an [`ObjectBackend`] on this store, under `prefix`.
    ///
    /// # Errors
    /// As [`ObjectBackend::open`].
    pub fn backend(
        &self,
        prefix: &str,
        read_only: bool,
        options: ObjectOptions,
    ) -> Result<ObjectBackend, FormatError> {
        let store: Arc<dyn ObjectStore> = Arc::new(self.clone());
        ObjectBackend::open(store, prefix, "faulty://", read_only, options)
    }

    /// After `n` more requests, every request fails (and a write may land
    /// all the same) until [`heal`](FaultyObjectStore::heal).
    pub fn fail_after(&self, n: u64) {
        self.state.lock().fail_after = Some(n);
    }

    /// The process died: every later request fails and lands nothing,
    /// until [`heal`](FaultyObjectStore::heal).
    pub fn kill(&self) {
        self.state.lock().killed = true;
    }

    /// Disarms failures and ends a kill.
    pub fn heal(&self) {
        let mut st = self.state.lock();
        st.fail_after = None;
        st.killed = false;
    }

    /// Reads from now on are decided (to pass or fail) when made, then
    /// wait until [`release_gets`](FaultyObjectStore::release_gets): a
    /// request held in flight while the store's state changes.
    pub fn hold_gets(&self) {
        self.state.lock().hold_gets = true;
    }

    /// Lets the held reads, and later ones, go on.
    pub fn release_gets(&self) {
        self.state.lock().hold_gets = false;
    }

    /// Reads waiting for [`release_gets`](FaultyObjectStore::release_gets).
    pub fn gets_held(&self) -> usize {
        self.state.lock().gets_held
    }

    /// Waits while reads are held.
    async fn held(&self) {
        {
            let mut st = self.state.lock();
            if !st.hold_gets {
                return;
            }
            st.gets_held += 1;
        }
        while self.state.lock().hold_gets {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.state.lock().gets_held -= 1;
    }

    /// Requests made so far, failed ones included.
    pub fn requests(&self) -> u64 {
        self.state.lock().requests
    }

    fn gate(&self) -> Gate {
        let mut st = self.state.lock();
        st.requests += 1;
        if st.killed {
            return Gate::Fail { lands: false };
        }
        match st.fail_after {
            None => Gate::Pass,
            Some(n) if n > 0 => {
                st.fail_after = Some(n - 1);
                Gate::Pass
            }
            Some(_) => {
                st.rng ^= st.rng << 13;
                st.rng ^= st.rng >> 7;
                st.rng ^= st.rng << 17;
                Gate::Fail {
                    lands: st.rng & 1 == 1,
                }
            }
        }
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: "injected failure".into(),
    }
}

impl fmt::Debug for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultyObjectStore")
    }
}

impl fmt::Display for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultyObjectStore")
    }
}

#[async_trait]
impl ObjectStore for FaultyObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match self.gate() {
            Gate::Pass => self.inner.put_opts(location, payload, opts).await,
            Gate::Fail { lands } => {
                if lands {
                    // The conditions still hold: a put that would have
                    // been refused does not land either.
                    let _ = self.inner.put_opts(location, payload, opts).await;
                }
                Err(injected())
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        match self.gate() {
            Gate::Pass => self.inner.put_multipart_opts(location, opts).await,
            Gate::Fail { .. } => Err(injected()),
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let gate = self.gate();
        self.held().await;
        match gate {
            Gate::Pass => self.inner.get_opts(location, options).await,
            Gate::Fail { .. } => Err(injected()),
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .then(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let gate = this.gate();
                    let (pass, lands) = match gate {
                        Gate::Pass => (true, true),
                        Gate::Fail { lands } => (false, lands),
                    };
                    if lands {
                        let copy = location.clone();
                        let one = futures::stream::once(async move { Ok(copy) }).boxed();
                        let mut out = this.inner.delete_stream(one);
                        while let Some(r) = out.next().await {
                            r?;
                        }
                    }
                    if pass {
                        Ok(location)
                    } else {
                        Err(injected())
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.gate() {
            Gate::Pass => self.inner.list(prefix),
            Gate::Fail { .. } => futures::stream::once(async { Err(injected()) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        match self.gate() {
            Gate::Pass => self.inner.list_with_delimiter(prefix).await,
            Gate::Fail { .. } => Err(injected()),
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        match self.gate() {
            Gate::Pass => self.inner.copy_opts(from, to, options).await,
            Gate::Fail { .. } => Err(injected()),
        }
    }
}
