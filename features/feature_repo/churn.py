"""Feast definitions for the churn case study. Definitions only: `feast apply` imports this.

The file source path is relative: Feast resolves it against the repo path, which the
platform sets to `MLOPS_HOME/features`, so the definitions do not depend on settings.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

from features.churn_transforms import CHURN_FEATURES

CHURN_FEATURES_FILE = "churn_customer_features.parquet"

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A telco customer, keyed by the customerID of the Telco schema.",
)

churn_customer_source = FileSource(
    name="churn_customer_source",
    path=CHURN_FEATURES_FILE,
    timestamp_field="event_timestamp",
    description="Customer snapshots transformed by features.churn_transforms.",
)

churn_customer_features = FeatureView(
    name="churn_customer_features",
    entities=[customer],
    # A snapshot stays the customer's latest state for about a year of billing cycles.
    ttl=timedelta(days=400),
    schema=[Field(name=name, dtype=Float64) for name in CHURN_FEATURES],
    source=churn_customer_source,
    online=True,
    tags={"case_study": "churn"},
)

# The churn model reads exactly this list, in this order, in training and in serving.
churn_model = FeatureService(
    name="churn_model",
    features=[churn_customer_features[list(CHURN_FEATURES)]],
    description="Features of the churn classifier, in the model's input order.",
)
