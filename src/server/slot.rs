//! A reusable heap slot for a callback's futures: the callback's future is made straight
//! into a slot kept from one event to the next (`Pin::set`), polled once with the caller's
//! context, and the slot is given back when the future is done. Only a future that waits
//! keeps its slot, boxed in a small [`Held`], and the next event takes a new one. Most
//! callbacks (an echo, a `send`, a hello answer) finish on their first poll, so one slot
//! serves them all: no allocation per event. Used by `on_receive` ([`super::wrap_polled`])
//! and `on_request` (`http::handler::req_cb`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::runtime::app::BoxFut;
use crate::CallbackResult;

/// A heap slot for one future (`None` between events).
type Slot<Fut> = Pin<Box<Option<Fut>>>;

/// The slot kept for the next event of one callback.
pub(crate) struct Slots<Fut>(Rc<RefCell<Option<Slot<Fut>>>>);

impl<Fut> Slots<Fut>
where
    Fut: Future + 'static,
    Fut::Output: CallbackResult,
{
    pub(crate) fn new() -> Slots<Fut> {
        Slots(Rc::new(RefCell::new(None)))
    }

    /// Makes the future with `make` in the spare slot and polls it once; `None` when it
    /// finished then (its result reported under `name`), else the rest to await.
    pub(crate) fn run(
        &self,
        name: &'static str,
        make: impl FnOnce() -> Fut,
        cx: &mut Context<'_>,
    ) -> Option<BoxFut> {
        self.run_made(name, || Some(make()), cx)
    }

    /// As [`run`](Self::run), with a maker that may have nothing to run (`None`: nothing
    /// runs, `None` comes back). The slot takes the maker's result as it is (an `Option` of
    /// the future is the slot's type: no wrapping, no move of the future more).
    pub(crate) fn run_made(
        &self,
        name: &'static str,
        make: impl FnOnce() -> Option<Fut>,
        cx: &mut Context<'_>,
    ) -> Option<BoxFut> {
        let mut slot = self.0.borrow_mut().take().unwrap_or_else(|| Box::pin(None));
        // Made straight into the slot (one move of the future less).
        slot.as_mut().set(make());
        match poll_slot(slot.as_mut(), name, cx) {
            Poll::Ready(()) => {
                *self.0.borrow_mut() = Some(slot);
                None
            }
            Poll::Pending => Some(Box::pin(Held {
                slot: Some(slot),
                spare: self.0.clone(),
                name,
            })),
        }
    }
}

/// Polls the future in `slot`; when it is done, empties the slot (the future is dropped) and
/// reports its result under `name`.
fn poll_slot<Fut>(
    mut slot: Pin<&mut Option<Fut>>,
    name: &'static str,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    Fut: Future,
    Fut::Output: CallbackResult,
{
    let Some(fut) = slot.as_mut().as_pin_mut() else {
        return Poll::Ready(());
    };
    let out = std::task::ready!(fut.poll(cx));
    slot.set(None);
    out.report(name);
    Poll::Ready(())
}

/// A callback's future that waited: its slot, given back when it is done (or dropped).
struct Held<Fut> {
    slot: Option<Slot<Fut>>,
    spare: Rc<RefCell<Option<Slot<Fut>>>>,
    name: &'static str,
}

impl<Fut> Future for Held<Fut>
where
    Fut: Future,
    Fut::Output: CallbackResult,
{
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let name = self.name;
        match self.slot.as_mut() {
            Some(slot) => poll_slot(slot.as_mut(), name, cx),
            None => Poll::Ready(()),
        }
    }
}

impl<Fut> Drop for Held<Fut> {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            // Dropped before it finished (a request timeout, the worker stops): its future
            // goes now, and the slot back to the spare if it is free.
            slot.as_mut().set(None);
            if let Ok(mut spare) = self.spare.try_borrow_mut() {
                spare.get_or_insert(slot);
            }
        }
    }
}
