//! A record of each SDK call the sidecar served, with its arguments: for logs, metrics and the
//! conformance tests (which check that a client sent exactly the calls it meant to).

/// One SDK call, as received (gRPC or REST alike).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SdkCall {
    /// `Ready`.
    Ready,
    /// `Allocate`.
    Allocate,
    /// `Shutdown`.
    Shutdown,
    /// One health ping.
    Health,
    /// `GetGameServer`.
    GetGameServer,
    /// `WatchGameServer` opened.
    WatchGameServer,
    /// `SetLabel` (the key as sent, without the `agones.dev/sdk-` prefix).
    SetLabel {
        /// Key as sent.
        key: String,
        /// Value as sent.
        value: String,
    },
    /// `SetAnnotation` (the key as sent).
    SetAnnotation {
        /// Key as sent.
        key: String,
        /// Value as sent.
        value: String,
    },
    /// `Reserve(seconds)`.
    Reserve {
        /// Seconds as sent.
        seconds: i64,
    },
    /// alpha `PlayerConnect`.
    PlayerConnect {
        /// Player id.
        id: String,
    },
    /// alpha `PlayerDisconnect`.
    PlayerDisconnect {
        /// Player id.
        id: String,
    },
    /// alpha `SetPlayerCapacity`.
    SetPlayerCapacity {
        /// New capacity.
        capacity: i64,
    },
    /// alpha `GetPlayerCapacity`.
    GetPlayerCapacity,
    /// alpha `GetPlayerCount`.
    GetPlayerCount,
    /// alpha `IsPlayerConnected`.
    IsPlayerConnected {
        /// Player id.
        id: String,
    },
    /// alpha `GetConnectedPlayers`.
    GetConnectedPlayers,
    /// beta `GetCounter`.
    GetCounter {
        /// Counter name.
        name: String,
    },
    /// beta `UpdateCounter`.
    UpdateCounter {
        /// Counter name.
        name: String,
        /// New count, if set.
        count: Option<i64>,
        /// New capacity, if set.
        capacity: Option<i64>,
        /// Added to the count.
        diff: i64,
    },
    /// beta `GetList`.
    GetList {
        /// List name.
        name: String,
    },
    /// beta `UpdateList`.
    UpdateList {
        /// List name.
        name: String,
        /// Field-mask paths.
        paths: Vec<String>,
        /// Capacity in the request.
        capacity: i64,
        /// Values in the request.
        values: Vec<String>,
    },
    /// beta `AddListValue`.
    AddListValue {
        /// List name.
        name: String,
        /// Value.
        value: String,
    },
    /// beta `RemoveListValue`.
    RemoveListValue {
        /// List name.
        name: String,
        /// Value.
        value: String,
    },
}

impl SdkCall {
    /// The rpc name, as in the proto.
    pub fn rpc(&self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Allocate => "Allocate",
            Self::Shutdown => "Shutdown",
            Self::Health => "Health",
            Self::GetGameServer => "GetGameServer",
            Self::WatchGameServer => "WatchGameServer",
            Self::SetLabel { .. } => "SetLabel",
            Self::SetAnnotation { .. } => "SetAnnotation",
            Self::Reserve { .. } => "Reserve",
            Self::PlayerConnect { .. } => "PlayerConnect",
            Self::PlayerDisconnect { .. } => "PlayerDisconnect",
            Self::SetPlayerCapacity { .. } => "SetPlayerCapacity",
            Self::GetPlayerCapacity => "GetPlayerCapacity",
            Self::GetPlayerCount => "GetPlayerCount",
            Self::IsPlayerConnected { .. } => "IsPlayerConnected",
            Self::GetConnectedPlayers => "GetConnectedPlayers",
            Self::GetCounter { .. } => "GetCounter",
            Self::UpdateCounter { .. } => "UpdateCounter",
            Self::GetList { .. } => "GetList",
            Self::UpdateList { .. } => "UpdateList",
            Self::AddListValue { .. } => "AddListValue",
            Self::RemoveListValue { .. } => "RemoveListValue",
        }
    }
}
