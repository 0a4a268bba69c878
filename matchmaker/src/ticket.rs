//! Tickets as the API sees them: the request that creates one, and the state it reports.
//!
//! Every searching ticket's view is held in memory, so its rarely set parts (match,
//! assignment) are boxed and its players' maps are [`CompactMap`]s.

mod compact_map;

pub use compact_map::CompactMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use stadion_crds::allocation::GameServerAllocationStatus;
use stadion_crds::gameserver::GameServerStatusPort;
use stadion_crds::k8s_openapi::api::core::v1::NodeAddress;

/// `POST /v1/tickets` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketRequest {
    /// The queue to join.
    pub queue: String,
    /// One player, or a party that stays together on one team.
    pub players: Vec<Player>,
    /// Caller-chosen key: resubmitting with the same key returns the same ticket. Also accepted
    /// as the `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// One player of a ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Player {
    /// The game's player id; one live ticket per player.
    pub id: String,
    /// Free-form attributes (strings or numbers); the queue's skill rule reads its attribute.
    #[serde(default, skip_serializing_if = "CompactMap::is_empty")]
    pub attributes: CompactMap<AttributeValue>,
    /// Measured round-trip latency in ms per region, e.g. `{"eu-west": 32}`.
    #[serde(default, skip_serializing_if = "CompactMap::is_empty")]
    pub latencies: CompactMap<f64>,
}

/// A free-form attribute value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
}

/// Where a ticket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Waiting for a match.
    Searching,
    /// In a match whose server is being allocated (or waiting for a Ready server).
    Matched,
    /// The match has a server: see `assignment`.
    Assigned,
    /// Not assigned within the queue's ticket timeout.
    TimedOut,
    /// Cancelled by the caller.
    Cancelled,
    /// Could not be assigned: see `reason`.
    Failed,
}

impl TicketState {
    /// Every state, in lifecycle order.
    pub const ALL: [TicketState; 6] = [
        TicketState::Searching,
        TicketState::Matched,
        TicketState::Assigned,
        TicketState::TimedOut,
        TicketState::Cancelled,
        TicketState::Failed,
    ];

    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TicketState::Searching | TicketState::Matched)
    }

    /// The wire name (`timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Searching => "searching",
            TicketState::Matched => "matched",
            TicketState::Assigned => "assigned",
            TicketState::TimedOut => "timed_out",
            TicketState::Cancelled => "cancelled",
            TicketState::Failed => "failed",
        }
    }
}

/// A ticket as `GET /v1/tickets/{id}` and the event stream report it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Ticket id (UUID).
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Current state.
    pub state: TicketState,
    /// Its players as submitted.
    pub players: Vec<Player>,
    /// The caller's idempotency key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its state last changed (RFC 3339).
    pub updated_at: String,
    /// The match it is in (states `matched` and `assigned`).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_info: Option<Box<MatchInfo>>,
    /// Where to connect (state `assigned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Box<Assignment>>,
    /// Why it failed or ended (states `failed`, `timed_out`, `cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The match a ticket is in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchInfo {
    /// Match id (UUID), also written on the server.
    pub id: String,
    /// Player ids per team.
    pub teams: Vec<Vec<String>>,
    /// The region every player accepted, when the queue has a latency rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// When it formed (RFC 3339).
    pub formed_at: String,
}

/// The server a match was allocated; identical for every ticket of the match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// GameServer name.
    pub game_server_name: String,
    /// Primary address.
    pub address: String,
    /// All addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Ports players connect to.
    pub ports: Vec<GameServerStatusPort>,
    /// Node the server runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Match id.
    pub match_id: String,
    /// Player ids per team.
    pub teams: Vec<Vec<String>>,
}

impl Assignment {
    /// Where the allocated server `status` is, for the players of match `match_id` in `teams`.
    pub fn new(status: &GameServerAllocationStatus, match_id: String, teams: Vec<Vec<String>>) -> Self {
        Self {
            game_server_name: status.game_server_name.clone(),
            address: status.address.clone(),
            addresses: status.addresses.clone(),
            ports: status.ports.clone(),
            node_name: status.node_name.clone(),
            match_id,
            teams,
        }
    }
}
