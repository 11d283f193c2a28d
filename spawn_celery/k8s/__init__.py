"""Kubernetes support: manifests, the spawn-eigr.io CRDs' operator and an in-memory API for its tests.

Imports flow down this list; nothing needs the ``kubernetes`` package at import time except :mod:`.fake`.

- :mod:`.objects`: builders of plain Kubernetes objects (labels, Deployment, ConfigMap, containers, checksums).
- :mod:`.scaling`: autoscaling/v2 HorizontalPodAutoscalers and PodDisruptionBudgets.
- :mod:`.devstack`: the development Redis (StatefulSet, Service, NetworkPolicy).
- :mod:`.desired`: what an ActorSystem and an ActorHost resource should produce.
- :mod:`.activator`: what an Activator (resource or manifest file) produces.
- :mod:`.render`: the whole stack from one :class:`~spawn_celery.k8s.render.StackConfig`; :mod:`.command` is
  ``spawn-celery k8s render``.
- :mod:`.patch`: JSON merge patches computed like ``kubectl apply``.
- :mod:`.reconcile`: the reconcile step against any object with the Kubernetes client's methods.
- :mod:`.operator`: ``spawn-celery operator`` (watches, backoff; imports ``kubernetes`` when it runs).
- :mod:`.fake`: an in-memory API server with real semantics, for tests (needs the ``k8s`` extra).
"""
