"""Feast definitions for the fraud case study. Definitions only: `feast apply` imports this.

The online store keeps one state per card (customer) and per terminal: the arrays of
recent transactions that `features.fraud_online` turns into the model's window features.
Each state view is fed two ways: materialized from parquet that the batch flow writes
(relative paths, resolved against the repo path) and pushed by serving after each
transaction. The on-demand view computes the features at request time from both states
and the transaction's own time and amount, so one `get_online_features` call on the
`fraud_model` service returns the model's input row.

Event timestamps of the states are the times they were written, not transaction times:
a state is a full snapshot, and the newest write must win (Redis skips writes that are
not newer than the stored one, which same-second transactions would otherwise trip).
The state's own time arrays say which transactions it covers.
"""

from datetime import timedelta

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64

from features.fraud_online import (
    CUSTOMER_AMOUNTS,
    CUSTOMER_KEY,
    CUSTOMER_TERMINALS,
    CUSTOMER_TIMES,
    REQUEST_AMOUNT,
    REQUEST_TIME,
    TERMINAL_FRAUDS,
    TERMINAL_KEY,
    TERMINAL_TIMES,
)
from features.fraud_windows import FRAUD_FEATURES

CUSTOMER_STATE_FILE = "fraud_customer_state.parquet"
TERMINAL_STATE_FILE = "fraud_terminal_state.parquet"
STATE_TIMESTAMP = "event_timestamp"
CUSTOMER_STATE_PUSH = "fraud_customer_state_push"
TERMINAL_STATE_PUSH = "fraud_terminal_state_push"
# The windows drop old entries by their own times, so a state never expires (ttl 0).
NO_EXPIRY = timedelta(0)

card_customer = Entity(
    name="card_customer",
    join_keys=[CUSTOMER_KEY],
    value_type=ValueType.INT64,
    description="A card holder, keyed by the CUSTOMER_ID of the Handbook's transactions.",
)

terminal = Entity(
    name="terminal",
    join_keys=[TERMINAL_KEY],
    value_type=ValueType.INT64,
    description="A payment terminal, keyed by the TERMINAL_ID of the Handbook's transactions.",
)

fraud_customer_state_source = FileSource(
    name="fraud_customer_state_source",
    path=CUSTOMER_STATE_FILE,
    timestamp_field=STATE_TIMESTAMP,
    description="Per customer, its transactions of the last 30 days (features.fraud_online).",
)

fraud_terminal_state_source = FileSource(
    name="fraud_terminal_state_source",
    path=TERMINAL_STATE_FILE,
    timestamp_field=STATE_TIMESTAMP,
    description="Per terminal, its transactions of the last delay + 30 days, with labels.",
)

fraud_customer_state_push = PushSource(
    name=CUSTOMER_STATE_PUSH, batch_source=fraud_customer_state_source
)
fraud_terminal_state_push = PushSource(
    name=TERMINAL_STATE_PUSH, batch_source=fraud_terminal_state_source
)

fraud_customer_state = FeatureView(
    name="fraud_customer_state",
    entities=[card_customer],
    ttl=NO_EXPIRY,
    schema=[
        Field(name=CUSTOMER_TIMES, dtype=Array(Int64)),
        Field(name=CUSTOMER_AMOUNTS, dtype=Array(Float64)),
        Field(name=CUSTOMER_TERMINALS, dtype=Array(Int64)),
    ],
    source=fraud_customer_state_push,
    online=True,
    tags={"case_study": "fraud"},
)

fraud_terminal_state = FeatureView(
    name="fraud_terminal_state",
    entities=[terminal],
    ttl=NO_EXPIRY,
    schema=[
        Field(name=TERMINAL_TIMES, dtype=Array(Int64)),
        Field(name=TERMINAL_FRAUDS, dtype=Array(Int64)),
    ],
    source=fraud_terminal_state_push,
    online=True,
    tags={"case_study": "fraud"},
)

fraud_transaction = RequestSource(
    name="fraud_transaction",
    schema=[
        Field(name=REQUEST_TIME, dtype=Int64),  # nanoseconds since the epoch, UTC
        Field(name=REQUEST_AMOUNT, dtype=Float64),
    ],
    description="The transaction being scored: its time and amount.",
)


@on_demand_feature_view(
    sources=[fraud_customer_state, fraud_terminal_state, fraud_transaction],
    schema=[Field(name=name, dtype=Float64) for name in FRAUD_FEATURES],
    mode="python",
    description="The fraud model's features of the transaction, by features.fraud_online.",
    tags={"case_study": "fraud"},
)
def fraud_transaction_features(inputs: dict) -> dict:
    # Feast stores this function's source and runs it in a bare namespace: import inside.
    from features.fraud_online import features_from_feast_inputs

    return features_from_feast_inputs(inputs)


# The fraud model reads exactly this list, in this order, in training and in serving.
fraud_model = FeatureService(
    name="fraud_model",
    features=[fraud_transaction_features[list(FRAUD_FEATURES)]],
    description="Features of the fraud classifier, in the model's input order.",
)
