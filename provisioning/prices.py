"""On-demand prices of the instance types in provisioning/instances.py, for `plan`'s cost estimate.

Source: AWS, "Amazon SageMaker AI pricing", Real-Time Inference, US East (N. Virginia), on-demand, USD per instance
hour (https://aws.amazon.com/sagemaker/ai/pricing/). Entered 2026-11-25 without a live check from this machine:
treat the figures as an estimate, re-check the page before budgeting; other regions typically cost 5-30 % more.
"""

from __future__ import annotations

PRICE_SOURCE = "AWS SageMaker AI pricing page, Real-Time Inference, us-east-1 on-demand"
PRICE_DATE = "2026-11-25"
PRICE_REGION = "us-east-1"
HOURS_PER_MONTH = 730  # AWS's own convention for monthly estimates

HOURLY_USD: dict[str, float] = {
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.16xlarge": 5.12,
    "ml.g5.24xlarge": 10.18,
    "ml.g5.48xlarge": 20.36,
    "ml.g6.xlarge": 1.006,
    "ml.g6.2xlarge": 1.222,
    "ml.g6.12xlarge": 5.752,
    "ml.g6.48xlarge": 16.688,
    "ml.p4d.24xlarge": 37.688,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.2xlarge": 0.408,
}


def cost_lines(instance_type: str, min_instances: int, initial_instances: int, max_instances: int) -> list[str]:
    """Hourly and monthly cost of the endpoint's instances at its floor, at start and at its ceiling."""
    hourly = HOURLY_USD.get(instance_type)
    if hourly is None:
        return [f"cost: no price for {instance_type} in provisioning/prices.py"]
    lines = [f"cost ({PRICE_SOURCE}, {PRICE_DATE}): {instance_type} ${hourly:,.3f}/h per instance"]
    for label, count in (("idle floor", min_instances), ("at start", initial_instances), ("at most", max_instances)):
        per_hour = hourly * count
        lines.append(f"  {label:<10} {count} instance(s): ${per_hour:,.2f}/h, ${per_hour * HOURS_PER_MONTH:,.0f}/month")
    if min_instances == 0:
        lines.append("  scale to zero: no instance cost while idle; the first request after idling waits minutes")
    return lines
