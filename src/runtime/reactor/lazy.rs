//! Per-connection containers of the reactor's [`DispatchState`](super::DispatchState) that
//! are empty for almost every connection and so cost one pointer until used: the queue of
//! deferred events and the HTTP/2 streams' bookkeeping (issue 20, idle connections). Each
//! offers the few methods of `Vec` / `VecDeque` the reactor uses, so its code reads the same.

use std::collections::VecDeque;

/// A `Vec` allocated (boxed) at its first push: 8 bytes inline instead of 24.
#[derive(Debug)]
#[allow(clippy::box_collection)] // the box is the point: one pointer inline while empty
pub(crate) struct LazyVec<T>(Option<Box<Vec<T>>>);

impl<T> Default for LazyVec<T> {
    fn default() -> Self {
        LazyVec(None)
    }
}

impl<T> LazyVec<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.is_empty())
    }

    pub(crate) fn push(&mut self, x: T) {
        self.0.get_or_insert_with(Default::default).push(x);
    }

    pub(crate) fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(f);
        }
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        match &mut self.0 {
            Some(v) => v.iter_mut(),
            None => [].iter_mut(),
        }
    }

    pub(crate) fn contains(&self, x: &T) -> bool
    where
        T: PartialEq,
    {
        self.0.as_ref().is_some_and(|v| v.contains(x))
    }
}

impl<T> IntoIterator for LazyVec<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.map(|v| *v).unwrap_or_default().into_iter()
    }
}

/// A `VecDeque` allocated (boxed) at its first push: 8 bytes inline instead of 32. Kept once
/// allocated (a connection that deferred once is likely to again).
#[derive(Debug)]
#[allow(clippy::box_collection)] // the box is the point: one pointer inline while empty
pub(crate) struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> Self {
        LazyDeque(None)
    }
}

impl<T> LazyDeque<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    pub(crate) fn push_back(&mut self, x: T) {
        self.0.get_or_insert_with(Default::default).push_back(x);
    }

    pub(crate) fn push_front(&mut self, x: T) {
        self.0.get_or_insert_with(Default::default).push_front(x);
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        self.0.as_mut()?.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_until_used_and_behaves_like_its_std_container() {
        assert_eq!(std::mem::size_of::<LazyVec<u64>>(), 8);
        assert_eq!(std::mem::size_of::<LazyDeque<u64>>(), 8);
        let mut v = LazyVec::default();
        assert!(v.is_empty() && !v.contains(&1) && v.iter_mut().next().is_none());
        v.retain(|_| false);
        for x in [1, 2, 3] {
            v.push(x);
        }
        v.retain(|&x| x != 2);
        assert!(!v.is_empty() && v.contains(&3) && !v.contains(&2));
        for x in v.iter_mut() {
            *x *= 10;
        }
        assert_eq!(
            std::mem::take(&mut v).into_iter().collect::<Vec<_>>(),
            [10, 30]
        );
        assert!(v.is_empty());
        assert_eq!(LazyVec::<u8>::default().into_iter().count(), 0);

        let mut q = LazyDeque::default();
        assert!(q.is_empty() && q.pop_front().is_none());
        q.push_back(2);
        q.push_back(3);
        q.push_front(1);
        assert_eq!(
            std::iter::from_fn(|| q.pop_front()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn dispatch_state_size() {
        // Per connection in a Process master (issue 20): 112 B with the std containers inline.
        let n = std::mem::size_of::<parking_lot::Mutex<super::super::DispatchState>>();
        eprintln!("Mutex<DispatchState> {n} B");
        assert!(n <= 56, "{n}");
    }
}
