//! Players (alpha), counters and lists (beta) as plain functions over the GameServer status, with
//! the gRPC error codes Agones documents. The sidecar runs them inside backend mutations.

use stadion_crds::GameServer;
use stadion_crds::common::{CounterStatus, ListStatus, MAX_LIST_CAPACITY};
use stadion_crds::gameserver::{GameServerStatus, PlayerStatus};

use super::SdkError;
use super::metadata::tracked_value;

fn status(gs: &mut GameServer) -> &mut GameServerStatus {
    gs.status.get_or_insert_with(GameServerStatus::default)
}

fn players(gs: &mut GameServer) -> &mut PlayerStatus {
    status(gs).players.get_or_insert_with(PlayerStatus::default)
}

/// Player status of a GameServer, empty when it tracks none.
pub fn player_status(gs: &GameServer) -> PlayerStatus {
    gs.status.as_ref().and_then(|s| s.players.clone()).unwrap_or_default()
}

/// Adds a player: false when already connected, OUT_OF_RANGE when at capacity.
pub fn player_connect(gs: &mut GameServer, id: &str) -> Result<bool, SdkError> {
    tracked_value("player id", id)?;
    let players = players(gs);
    if players.ids.iter().any(|p| p == id) {
        return Ok(false);
    }
    if players.ids.len() as i64 >= players.capacity {
        return Err(SdkError::OutOfRange(format!("players are already at capacity ({})", players.capacity)));
    }
    players.ids.push(id.to_owned());
    players.count = players.ids.len() as i64;
    Ok(true)
}

/// Removes a player: false when it was not connected.
pub fn player_disconnect(gs: &mut GameServer, id: &str) -> bool {
    let players = players(gs);
    let before = players.ids.len();
    players.ids.retain(|p| p != id);
    players.count = players.ids.len() as i64;
    players.ids.len() != before
}

/// Sets the player capacity (never negative).
pub fn set_player_capacity(gs: &mut GameServer, capacity: i64) -> Result<(), SdkError> {
    if capacity < 0 {
        return Err(SdkError::OutOfRange(format!("player capacity must not be negative, got {capacity}")));
    }
    players(gs).capacity = capacity;
    Ok(())
}

/// The counter called `name`, or NOT_FOUND.
pub fn counter(gs: &GameServer, name: &str) -> Result<CounterStatus, SdkError> {
    gs.status
        .as_ref()
        .and_then(|s| s.counters.get(name))
        .cloned()
        .ok_or_else(|| SdkError::NotFound(format!("counter not found: {name}")))
}

/// One UpdateCounter request: set the capacity, set the count, then add `diff` — in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterUpdate {
    /// New count, if set.
    pub count: Option<i64>,
    /// New capacity, if set.
    pub capacity: Option<i64>,
    /// Added to the count (negative: decrement).
    pub diff: i64,
}

/// Applies a counter update; OUT_OF_RANGE when a set or changed count would leave
/// `[0, capacity]` (a new capacity below the count truncates the count instead).
pub fn update_counter(gs: &mut GameServer, name: &str, update: &CounterUpdate) -> Result<CounterStatus, SdkError> {
    let counter =
        status(gs).counters.get_mut(name).ok_or_else(|| SdkError::NotFound(format!("counter not found: {name}")))?;
    let mut next = counter.clone();
    if let Some(capacity) = update.capacity {
        if capacity < 0 {
            return Err(SdkError::OutOfRange(format!("counter {name}: capacity must not be negative, got {capacity}")));
        }
        // As Agones: a capacity below the count is accepted, and the count cut down to it.
        next.capacity = capacity;
        next.count = next.count.min(capacity);
    }
    if let Some(count) = update.count {
        next.count = count;
    }
    next.count = next
        .count
        .checked_add(update.diff)
        .ok_or_else(|| SdkError::OutOfRange(format!("counter {name}: count overflows")))?;
    if next.count < 0 || next.count > next.capacity {
        return Err(SdkError::OutOfRange(format!(
            "counter {name}: count {} is out of range [0, {}]",
            next.count, next.capacity
        )));
    }
    *counter = next.clone();
    Ok(next)
}

/// The list called `name`, or NOT_FOUND.
pub fn list(gs: &GameServer, name: &str) -> Result<ListStatus, SdkError> {
    gs.status
        .as_ref()
        .and_then(|s| s.lists.get(name))
        .cloned()
        .ok_or_else(|| SdkError::NotFound(format!("list not found: {name}")))
}

fn list_mut<'a>(gs: &'a mut GameServer, name: &str) -> Result<&'a mut ListStatus, SdkError> {
    status(gs).lists.get_mut(name).ok_or_else(|| SdkError::NotFound(format!("list not found: {name}")))
}

/// Which fields UpdateList replaces (from the request's FieldMask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListMask {
    /// Replace the capacity.
    pub capacity: bool,
    /// Replace the values.
    pub values: bool,
}

impl ListMask {
    /// Parses FieldMask paths; INVALID_ARGUMENT for anything that is not a field of List. `name`
    /// is a field but cannot change, so it is accepted and ignored.
    pub fn from_paths<S: AsRef<str>>(paths: &[S]) -> Result<Self, SdkError> {
        if paths.is_empty() {
            return Err(SdkError::InvalidArgument("update_mask must name at least one field".into()));
        }
        let mut mask = Self::default();
        for path in paths {
            match path.as_ref() {
                "capacity" => mask.capacity = true,
                "values" => mask.values = true,
                "name" => {}
                other => {
                    return Err(SdkError::InvalidArgument(format!(
                        "update_mask: {other:?} is not a field of List (name, capacity, values)"
                    )));
                }
            }
        }
        Ok(mask)
    }
}

/// Replaces the masked fields of a list. Capacity must lie in `[0, 1000]`; values are
/// de-duplicated, and a list longer than its capacity is truncated to it (as Agones does).
pub fn update_list(gs: &mut GameServer, name: &str, mask: ListMask, new: &ListStatus) -> Result<ListStatus, SdkError> {
    let list = list_mut(gs, name)?;
    if mask.capacity && !(0..=MAX_LIST_CAPACITY).contains(&new.capacity) {
        return Err(SdkError::OutOfRange(format!(
            "list {name}: capacity {} is out of range [0, {MAX_LIST_CAPACITY}]",
            new.capacity
        )));
    }
    if mask.capacity {
        list.capacity = new.capacity;
    }
    if mask.values {
        for value in &new.values {
            tracked_value(&format!("list {name}: value"), value)?;
        }
        list.values.clear();
        for value in &new.values {
            if !list.values.contains(value) {
                list.values.push(value.clone());
            }
        }
    }
    let capacity = usize::try_from(list.capacity).unwrap_or(0);
    list.values.truncate(capacity);
    Ok(list.clone())
}

/// Appends a value; ALREADY_EXISTS when present, OUT_OF_RANGE when the list is full.
pub fn add_list_value(gs: &mut GameServer, name: &str, value: &str) -> Result<ListStatus, SdkError> {
    tracked_value(&format!("list {name}: value"), value)?;
    let list = list_mut(gs, name)?;
    if list.values.iter().any(|v| v == value) {
        return Err(SdkError::AlreadyExists(format!("list {name}: value {value:?} already exists")));
    }
    if list.values.len() as i64 >= list.capacity {
        return Err(SdkError::OutOfRange(format!("list {name}: at capacity ({})", list.capacity)));
    }
    list.values.push(value.to_owned());
    Ok(list.clone())
}

/// Removes a value; NOT_FOUND when absent.
pub fn remove_list_value(gs: &mut GameServer, name: &str, value: &str) -> Result<ListStatus, SdkError> {
    let list = list_mut(gs, name)?;
    let before = list.values.len();
    list.values.retain(|v| v != value);
    if list.values.len() == before {
        return Err(SdkError::NotFound(format!("list {name}: value {value:?} not found")));
    }
    Ok(list.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn gs() -> GameServer {
        let mut gs = GameServer::default();
        let status = status(&mut gs);
        status.counters.insert("rooms".into(), CounterStatus { count: 1, capacity: 3 });
        status.lists.insert("players".into(), ListStatus { capacity: 2, values: vec!["a".into()] });
        gs
    }

    #[test]
    fn counters_follow_agones_codes() {
        let mut gs = gs();
        let inc = CounterUpdate { diff: 2, ..Default::default() };
        assert_eq!(update_counter(&mut gs, "rooms", &inc).map(|c| c.count), Ok(3));
        assert_eq!(update_counter(&mut gs, "rooms", &inc).map_err(|e| e.code()), Err(Code::OutOfRange));
        assert_eq!(counter(&gs, "rooms").map(|c| c.count), Ok(3), "a failed update changes nothing");
        let dec = CounterUpdate { diff: -4, ..Default::default() };
        assert_eq!(update_counter(&mut gs, "rooms", &dec).map_err(|e| e.code()), Err(Code::OutOfRange));
        let set = CounterUpdate { count: Some(10), capacity: Some(10), diff: 0 };
        assert_eq!(update_counter(&mut gs, "rooms", &set), Ok(CounterStatus { count: 10, capacity: 10 }));
        assert_eq!(counter(&gs, "nope").map_err(|e| e.code()), Err(Code::NotFound));
        let neg = CounterUpdate { capacity: Some(-1), ..Default::default() };
        assert_eq!(update_counter(&mut gs, "rooms", &neg).map_err(|e| e.code()), Err(Code::OutOfRange));
        // A capacity below the count is Agones' way to shrink a server: the count follows it.
        let shrink = CounterUpdate { capacity: Some(4), ..Default::default() };
        assert_eq!(update_counter(&mut gs, "rooms", &shrink), Ok(CounterStatus { count: 4, capacity: 4 }));
        let zero = CounterUpdate { capacity: Some(0), ..Default::default() };
        assert_eq!(update_counter(&mut gs, "rooms", &zero), Ok(CounterStatus { count: 0, capacity: 0 }));
    }

    #[test]
    fn player_ids_and_list_values_have_a_length_cap() {
        let mut gs = gs();
        set_player_capacity(&mut gs, 10).expect("capacity");
        let long = "p".repeat(super::super::metadata::MAX_VALUE_BYTES + 1);
        assert_eq!(player_connect(&mut gs, &long).map_err(|e| e.code()), Err(Code::InvalidArgument));
        assert_eq!(add_list_value(&mut gs, "players", &long).map_err(|e| e.code()), Err(Code::InvalidArgument));
        let mask = ListMask::from_paths(&["values"]).expect("valid mask");
        let new = ListStatus { capacity: 0, values: vec![long.clone()] };
        assert_eq!(update_list(&mut gs, "players", mask, &new).map_err(|e| e.code()), Err(Code::InvalidArgument));
        assert_eq!(list(&gs, "players").map(|l| l.values), Ok(vec!["a".into()]), "nothing stored");
        let longest = "p".repeat(super::super::metadata::MAX_VALUE_BYTES);
        assert_eq!(player_connect(&mut gs, &longest), Ok(true));
    }

    #[test]
    fn lists_follow_agones_codes() {
        let mut gs = gs();
        assert_eq!(add_list_value(&mut gs, "players", "a").map_err(|e| e.code()), Err(Code::AlreadyExists));
        assert_eq!(add_list_value(&mut gs, "players", "b").map(|l| l.values.len()), Ok(2));
        assert_eq!(add_list_value(&mut gs, "players", "c").map_err(|e| e.code()), Err(Code::OutOfRange));
        assert_eq!(remove_list_value(&mut gs, "players", "zz").map_err(|e| e.code()), Err(Code::NotFound));
        assert_eq!(remove_list_value(&mut gs, "nope", "a").map_err(|e| e.code()), Err(Code::NotFound));
        let mask = ListMask::from_paths(&["capacity"]).expect("valid mask");
        let shrunk = update_list(&mut gs, "players", mask, &ListStatus { capacity: 1, values: vec![] });
        assert_eq!(shrunk, Ok(ListStatus { capacity: 1, values: vec!["a".into()] }), "values kept, truncated");
        let both = ListMask::from_paths(&["values", "capacity"]).expect("valid mask");
        let new = ListStatus { capacity: 5, values: vec!["x".into(), "x".into(), "y".into()] };
        assert_eq!(update_list(&mut gs, "players", both, &new).map(|l| l.values), Ok(vec!["x".into(), "y".into()]));
        assert_eq!(ListMask::from_paths(&["bogus"]).map_err(|e| e.code()), Err(Code::InvalidArgument));
        assert_eq!(ListMask::from_paths::<&str>(&[]).map_err(|e| e.code()), Err(Code::InvalidArgument));
        let too_big = ListStatus { capacity: 1001, values: vec![] };
        assert_eq!(update_list(&mut gs, "players", mask, &too_big).map_err(|e| e.code()), Err(Code::OutOfRange));
    }

    #[test]
    fn players_respect_capacity() {
        let mut gs = gs();
        assert_eq!(player_connect(&mut gs, "p1").map_err(|e| e.code()), Err(Code::OutOfRange));
        set_player_capacity(&mut gs, 1).expect("capacity");
        assert_eq!(player_connect(&mut gs, "p1"), Ok(true));
        assert_eq!(player_connect(&mut gs, "p1"), Ok(false));
        assert!(player_disconnect(&mut gs, "p1"));
        assert!(!player_disconnect(&mut gs, "p1"));
        assert_eq!(player_status(&gs).count, 0);
    }
}
