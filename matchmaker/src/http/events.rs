//! `GET /v1/tickets/{id}/events`: the ticket's state as Server-Sent Events.
//!
//! The current state comes first, then every change (a burst of changes may be coalesced to
//! the latest, which always includes the final one); the stream ends after a final state, when
//! the ticket is forgotten, or when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::watch;

use crate::ticket::Ticket;
use crate::{Error, Matchmaker};

struct Cursor {
    ticket: watch::Receiver<Arc<Ticket>>,
    closing: watch::Receiver<bool>,
    started: bool,
    done: bool,
}

fn event(ticket: &Ticket) -> Event {
    Event::default().event("ticket").data(serde_json::to_string(ticket).unwrap_or_default())
}

/// Streams the ticket's states.
pub async fn ticket_events(
    State(matchmaker): State<Matchmaker>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let cursor = Cursor { ticket: matchmaker.watch(&id)?, closing: matchmaker.closing(), started: false, done: false };
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        if cursor.started {
            tokio::select! {
                changed = cursor.ticket.changed() => changed.ok()?,
                _ = cursor.closing.wait_for(|closing| *closing) => return None,
            }
        }
        cursor.started = true;
        let ticket = cursor.ticket.borrow_and_update().clone();
        cursor.done = ticket.state.is_terminal();
        Some((Ok(event(&ticket)), cursor))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
