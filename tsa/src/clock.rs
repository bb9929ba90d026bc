//! The TSA's time source and its discipline.
//!
//! A token's genTime is only worth what the clock behind it is worth, so issuance stops
//! (timeNotAvailable) when the kernel says the clock is not synchronised, when its estimated
//! error exceeds the configured bound, or when time runs backwards past the last issued
//! genTime. The kernel's view comes from `adjtimex(2)` (as chrony and ntpd maintain it); a
//! deployment with another time discipline can plug in its own [`TimeSource`].

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What the time source knows about its synchronisation.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncStatus {
    /// Synchronised; the kernel's maximum error estimate and current offset.
    Synchronised {
        /// Upper bound of the error.
        max_error: Duration,
        /// Current offset being slewed out, seconds (signed).
        offset_seconds: f64,
    },
    /// Not synchronised (no NTP/PTP discipline, or it lost its sources).
    Unsynchronised,
    /// The status could not be read.
    Unknown(String),
}

/// A source of time with a synchronisation status.
pub trait TimeSource: Send + Sync + std::fmt::Debug {
    /// Current time.
    fn now(&self) -> SystemTime;
    /// Synchronisation state.
    fn status(&self) -> SyncStatus;
}

/// The system clock, with the kernel's NTP status read through `adjtimex(2)`.
#[derive(Debug, Default)]
pub struct KernelClock;

impl TimeSource for KernelClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn status(&self) -> SyncStatus {
        kernel_status()
    }
}

#[allow(unsafe_code)]
fn kernel_status() -> SyncStatus {
    // SAFETY: `timex` is plain old data; zeroed `modes` asks adjtimex only to read.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed timex for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return SyncStatus::Unknown(std::io::Error::last_os_error().to_string());
    }
    if state == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0 {
        return SyncStatus::Unsynchronised;
    }
    // offset is in microseconds, or nanoseconds with STA_NANO.
    let offset_seconds = if tx.status & libc::STA_NANO != 0 {
        tx.offset as f64 / 1e9
    } else {
        tx.offset as f64 / 1e6
    };
    SyncStatus::Synchronised {
        max_error: Duration::from_micros(tx.maxerror.max(0) as u64),
        offset_seconds,
    }
}

/// How strict the clock check is.
#[derive(Clone, Debug)]
pub struct ClockPolicy {
    /// Refuse to issue when the source is not synchronised (production: true).
    pub require_sync: bool,
    /// Refuse when the kernel's maximum error estimate exceeds this.
    pub max_error: Duration,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        ClockPolicy {
            require_sync: true,
            max_error: Duration::from_secs(1),
        }
    }
}

/// Why no time can be given.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    /// Not synchronised.
    #[error("clock not synchronised")]
    Unsynchronised,
    /// Status unreadable while synchronisation is required.
    #[error("clock status unknown: {0}")]
    Unknown(String),
    /// Error bound too large.
    #[error("clock error bound {0:?} exceeds the configured maximum")]
    ErrorTooLarge(Duration),
    /// The clock went backwards past the last genTime issued.
    #[error("clock jumped backwards by {0:?}")]
    Backwards(Duration),
}

/// A disciplined clock: source + policy + the last time handed out.
#[derive(Debug)]
pub struct Clock {
    source: Box<dyn TimeSource>,
    policy: ClockPolicy,
    last: Mutex<Option<SystemTime>>,
}

impl Clock {
    /// A clock over `source` checked by `policy`.
    pub fn new(source: Box<dyn TimeSource>, policy: ClockPolicy) -> Self {
        Clock {
            source,
            policy,
            last: Mutex::new(None),
        }
    }

    /// Never hand out a time earlier than `floor` (the newest genTime already issued, read
    /// from the audit log at start-up), so a clock set back while the TSA was down is caught.
    pub fn set_floor(&self, floor: SystemTime) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|l| l < floor) {
            *last = Some(floor);
        }
    }

    /// The source's synchronisation status (for metrics and health).
    pub fn status(&self) -> SyncStatus {
        self.source.status()
    }

    /// A time fit to be a genTime, or why there is none.
    pub fn issue_time(&self) -> Result<SystemTime, ClockError> {
        if self.policy.require_sync {
            match self.source.status() {
                SyncStatus::Synchronised { max_error, .. } if max_error > self.policy.max_error => {
                    return Err(ClockError::ErrorTooLarge(max_error))
                }
                SyncStatus::Synchronised { .. } => {}
                SyncStatus::Unsynchronised => return Err(ClockError::Unsynchronised),
                SyncStatus::Unknown(e) => return Err(ClockError::Unknown(e)),
            }
        }
        // Read the time while holding the lock: read before it, a thread preempted between
        // reading and locking would find a later time already handed out by another and
        // take its own, older one for a clock step (a spurious timeNotAvailable under load).
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.source.now();
        if let Some(prev) = *last {
            if let Ok(back) = prev.duration_since(now) {
                // Sub-second steps back can come from precision truncation elsewhere; any
                // real backwards step means the clock was set and cannot be trusted now.
                if back > Duration::from_millis(1) {
                    return Err(ClockError::Backwards(back));
                }
                return Ok(prev);
            }
        }
        *last = Some(now);
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Debug, Clone)]
    struct Fake(Arc<Mutex<(SystemTime, SyncStatus)>>);
    impl TimeSource for Fake {
        fn now(&self) -> SystemTime {
            self.0.lock().unwrap().0
        }
        fn status(&self) -> SyncStatus {
            self.0.lock().unwrap().1.clone()
        }
    }

    fn synced() -> SyncStatus {
        SyncStatus::Synchronised {
            max_error: Duration::from_millis(5),
            offset_seconds: 0.0,
        }
    }

    #[test]
    fn unsynchronised_clock_stops_issuance() {
        let f = Fake(Arc::new(Mutex::new((
            SystemTime::now(),
            SyncStatus::Unsynchronised,
        ))));
        let c = Clock::new(Box::new(f.clone()), ClockPolicy::default());
        assert_eq!(c.issue_time(), Err(ClockError::Unsynchronised));
        f.0.lock().unwrap().1 = synced();
        assert!(c.issue_time().is_ok());
        f.0.lock().unwrap().1 = SyncStatus::Synchronised {
            max_error: Duration::from_secs(5),
            offset_seconds: 0.3,
        };
        assert!(matches!(c.issue_time(), Err(ClockError::ErrorTooLarge(_))));
    }

    #[test]
    fn backwards_jump_stops_issuance() {
        let t0 = SystemTime::now();
        let f = Fake(Arc::new(Mutex::new((t0, synced()))));
        let c = Clock::new(Box::new(f.clone()), ClockPolicy::default());
        assert_eq!(c.issue_time().unwrap(), t0);
        f.0.lock().unwrap().0 = t0 - Duration::from_secs(30);
        assert_eq!(
            c.issue_time(),
            Err(ClockError::Backwards(Duration::from_secs(30)))
        );
        f.0.lock().unwrap().0 = t0 + Duration::from_secs(1);
        assert_eq!(c.issue_time().unwrap(), t0 + Duration::from_secs(1));
    }

    #[test]
    fn development_policy_ignores_sync_but_not_jumps() {
        let t0 = SystemTime::now();
        let f = Fake(Arc::new(Mutex::new((t0, SyncStatus::Unsynchronised))));
        let c = Clock::new(
            Box::new(f.clone()),
            ClockPolicy {
                require_sync: false,
                ..ClockPolicy::default()
            },
        );
        assert!(c.issue_time().is_ok());
        f.0.lock().unwrap().0 = t0 - Duration::from_secs(3600);
        assert!(matches!(c.issue_time(), Err(ClockError::Backwards(_))));
    }

    /// A source whose every other reading is slow to return: a thread that read the time
    /// and was then descheduled must not see the later times others issued meanwhile as a
    /// clock step. (Before the fix this failed within a few calls: the load benchmark's
    /// non-success replies were these spurious timeNotAvailable rejections.)
    #[test]
    fn concurrent_callers_never_see_a_false_backwards_step() {
        #[derive(Debug)]
        struct Slow(std::sync::atomic::AtomicU64, SystemTime);
        impl TimeSource for Slow {
            fn now(&self) -> SystemTime {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let t = self.1 + Duration::from_millis(10 * n);
                if n % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(3));
                }
                t
            }
            fn status(&self) -> SyncStatus {
                SyncStatus::Unsynchronised
            }
        }
        let c = Arc::new(Clock::new(
            Box::new(Slow(Default::default(), SystemTime::now())),
            ClockPolicy {
                require_sync: false,
                ..ClockPolicy::default()
            },
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut prev = None;
                    for _ in 0..25 {
                        let t = c.issue_time().expect("no spurious clock step");
                        assert!(prev.is_none_or(|p| p <= t));
                        prev = Some(t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn kernel_status_is_readable() {
        // Whatever this machine's state, reading it must not fail or panic.
        assert!(!matches!(KernelClock.status(), SyncStatus::Unknown(_)));
    }
}
