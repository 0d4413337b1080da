"""What a worker's metrics say in the cases a running worker rarely shows: a stopped thread, no
relay, a skipped message, a middleware that failed before the metrics one ran."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest
from prometheus_client import CollectorRegistry

from haengbok.worker_metrics import (
    MessageMetrics,
    MetricsServerError,
    WorkerMetrics,
    WorkerStateCollector,
)
from outbox.broker_message import PgmqBatchProxy, PgmqMessageProxy
from outbox.parking import StoredMessage


def _message(msg_id: int = 1) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name="q", actor_name="a", args=(), kwargs={}, options={}, message_id=f"m-{msg_id}"
    )


def _delivery(msg_id: int = 1) -> PgmqMessageProxy:
    return PgmqMessageProxy(_message(msg_id), StoredMessage("q", msg_id, 1, None, {}, None))


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class _Relay:
    relayed_total = 7

    class standby:
        leading = False


class TestState:
    def test_a_stopped_thread_reads_0(self) -> None:
        registry = CollectorRegistry()
        registry.register(WorkerStateCollector(lambda: False, None))
        assert _value(registry, "haengbok_worker_threads_alive") == 0
        assert _value(registry, "haengbok_worker_relay_leading") is None  # no relay here

    def test_a_standby_relay_reads_0_and_its_count(self) -> None:
        registry = CollectorRegistry()
        registry.register(WorkerStateCollector(lambda: True, _Relay()))  # type: ignore[arg-type]
        assert _value(registry, "haengbok_worker_threads_alive") == 1
        assert _value(registry, "haengbok_worker_relay_leading") == 0
        assert _value(registry, "haengbok_worker_relayed_events_total") == 7


class TestOutcomes:
    def _metrics(self) -> tuple[MessageMetrics, CollectorRegistry]:
        registry = CollectorRegistry()
        return MessageMetrics(registry), registry

    def test_a_batch_that_did_not_commit_counts_each_message_rolled_back(self) -> None:
        metrics, registry = self._metrics()
        batch = PgmqBatchProxy(_message(1), [_delivery(1), _delivery(2), _delivery(3)])
        metrics.before_process_message(dramatiq.Broker(), batch)
        assert _value(registry, "haengbok_worker_messages_in_progress", queue="q") == 3
        metrics.after_process_message(dramatiq.Broker(), batch)  # batch.done stays False
        assert _value(
            registry, "haengbok_worker_messages_total", queue="q", actor="a", outcome="rolled_back"
        ) == 3  # fmt: skip
        assert _value(registry, "haengbok_worker_batch_messages_sum", queue="q") == 3
        assert _value(registry, "haengbok_worker_messages_in_progress", queue="q") == 0

    def test_a_skipped_message_is_counted_and_no_longer_in_progress(self) -> None:
        metrics, registry = self._metrics()
        delivery = _delivery()
        metrics.before_process_message(dramatiq.Broker(), delivery)
        metrics.after_skip_message(dramatiq.Broker(), delivery)
        assert _value(
            registry, "haengbok_worker_messages_total", queue="q", actor="a", outcome="skipped"
        ) == 1  # fmt: skip
        assert _value(registry, "haengbok_worker_messages_in_progress", queue="q") == 0

    def test_an_outcome_without_a_start_is_counted_but_not_timed(self) -> None:
        # An earlier middleware raised in before_process_message: this one's never ran.
        metrics, registry = self._metrics()
        metrics.after_process_message(dramatiq.Broker(), _delivery(), exception=ValueError())
        assert _value(
            registry, "haengbok_worker_messages_total", queue="q", actor="a", outcome="failed"
        ) == 1  # fmt: skip
        assert _value(
            registry, "haengbok_worker_delivery_duration_seconds_count", queue="q", actor="a"
        ) in (None, 0)  # fmt: skip
        assert _value(registry, "haengbok_worker_messages_in_progress", queue="q") in (None, 0)


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_out_of_range_names_the_setting(port: int) -> None:
    with pytest.raises(MetricsServerError, match="HAENGBOK_WORKER_METRICS_PORT"):
        WorkerMetrics().serve("127.0.0.1", port)


def test_one_registry_per_worker_so_two_never_clash() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.middleware.messages.labels("q", "a", "ok").inc()
    assert _value(second.registry, "haengbok_worker_messages_total", queue="q", actor="a",
                  outcome="ok") is None  # fmt: skip
