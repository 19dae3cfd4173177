"""Thin adapters from the :class:`~collapselab.monitor.CollapseMonitor` to where you train.

Each module imports its framework lazily (install the extra it names); every adapter reads
the monitor's one typed record, :class:`~collapselab.monitor.MonitorState` (its
``measurement``, ``metrics`` = ``Measurement.scalars()``, ``spectrum``), never a copy
of a metric list.

- :mod:`collapselab.integrations.lightning`: ``CollapseMonitorCallback``, a Lightning
  ``Callback`` (logs through ``pl_module.log_dict``, stops through ``trainer.should_stop``,
  checkpoints the monitor).
- :mod:`collapselab.integrations.transformers`: ``CollapseMonitorCallback``, a
  ``transformers.TrainerCallback`` (``Trainer`` and ``SentenceTransformerTrainer``; logs
  through ``trainer.log``, stops through ``control.should_training_stop``), and
  ``CollapseMonitorEvaluator``, a sentence-transformers evaluator.
- :mod:`collapselab.integrations.trackers`: ``TensorBoardSink``, ``WandbSink``,
  ``MLflowSink``: callables ``(MonitorState) -> None`` to hang on a monitor
  (``CollapseMonitor(on_state=sink)``) or pass to the callbacks (``on_state=sink``).

Engines that check a sharded corpus where it lives (only packed ``d x d`` states travel,
:meth:`~collapselab.metrics.Moments.to_bytes`; the driver measures with the code of
``collapselab check``):

- :mod:`collapselab.integrations.ray_data`: ``check_dataset(ds, column)`` and
  ``moments_aggregate(column)`` (a Ray Data ``AggregateFnV2`` for your own pipeline);
- :mod:`collapselab.integrations.spark`: ``check_dataframe(df, column)`` (``mapInArrow``
  partition states merged by ``treeReduce``) and ``check_parquet(paths)``.

Stopping on collapse has one design everywhere: under a policy with ``on_collapse="stop"``
(:class:`~collapselab.monitor.AlarmPolicy`) the monitor sets ``monitor.should_stop`` when
the alarm fires, and each framework callback reads it. ``engines`` dispatches
``collapselab check --engine ray|spark``.
"""
