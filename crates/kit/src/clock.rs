//! The time services act on. Production reads the system clock; tests hold
//! a manual clock they move, so time-driven behaviour (SLA deadlines,
//! reminders) is tested without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Mutex<DateTime<Utc>>>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that stands at `start` until moved.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Clock(Some(Arc::new(Mutex::new(start))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(time) => *time.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// Moves a manual clock forward (every copy of it); the system clock
    /// cannot be moved.
    pub fn advance(&self, by: Duration) {
        self.set(self.now() + by);
    }

    /// Puts a manual clock at `time`.
    pub fn set(&self, time: DateTime<Utc>) {
        match &self.0 {
            None => panic!("the system clock cannot be moved"),
            Some(now) => *now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = time,
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_for_every_copy() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = Clock::manual(start);
        let copy = clock.clone();
        clock.advance(Duration::minutes(5));
        assert_eq!(copy.now(), start + Duration::minutes(5));
    }
}
