"""Kubernetes support: manifests, the spawn-eigr.io CRDs' operator and an in-memory API for its tests.

- :mod:`.objects`: builders of plain Kubernetes objects (Deployment, HPA, PodDisruptionBudget, ...).
- :mod:`.render`: the whole stack from one :class:`~spawn_celery.k8s.render.StackConfig` (``spawn-celery k8s
  render``, in :mod:`.command`).
- :mod:`.desired`: what each custom resource (ActorSystem, ActorHost, Activator) should produce.
- :mod:`.patch`: JSON merge patches computed like ``kubectl apply``.
- :mod:`.reconcile`: the reconcile step against any object with the Kubernetes client's methods.
- :mod:`.operator`: ``spawn-celery operator``, watches and reconciles (imports ``kubernetes`` lazily).
- :mod:`.fake`: an in-memory API with the server's semantics (needs the ``k8s`` extra).

Nothing here needs the ``kubernetes`` package at import time except :mod:`.fake`.
"""
