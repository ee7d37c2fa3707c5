//! A fixed set of SQLite connections handed out one at a time. Callers run
//! on the blocking pool, so waiting for a free connection blocks a thread,
//! never an async worker. With WAL, readers on other connections proceed
//! while one connection writes.

use rusqlite::Connection;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The connections and whether the pool was closed.
struct Slots {
    idle: Vec<Connection>,
    closed: bool,
}

/// A pool of open connections to one database.
pub(crate) struct Pool {
    slots: Mutex<Slots>,
    returned: Condvar,
}

/// A connection borrowed from the pool; goes back on drop (even on panic),
/// or is closed if the pool was closed meanwhile.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    connection: Option<Connection>,
}

impl Pool {
    pub(crate) fn new(connections: Vec<Connection>) -> Self {
        Pool { slots: Mutex::new(Slots { idle: connections, closed: false }), returned: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding this lock cannot leave `Slots` inconsistent.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A free connection, waiting for one; `None` once the pool is closed.
    pub(crate) fn get(&self) -> Option<Pooled<'_>> {
        let mut slots = self.lock();
        loop {
            if slots.closed {
                return None;
            }
            if let Some(connection) = slots.idle.pop() {
                return Some(Pooled { pool: self, connection: Some(connection) });
            }
            slots = self.returned.wait(slots).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Close the idle connections now and the busy ones when they return.
    /// Idempotent.
    pub(crate) fn close(&self) {
        let idle = {
            let mut slots = self.lock();
            slots.closed = true;
            std::mem::take(&mut slots.idle)
        };
        drop(idle);
        self.returned.notify_all();
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let mut slots = self.pool.lock();
        if slots.closed {
            drop(slots);
            drop(connection);
        } else {
            slots.idle.push(connection);
            drop(slots);
            self.pool.returned.notify_one();
        }
    }
}
