"""kube-scheduler: the framework, its plugins, the queue, the cache and the component.

`kubik scheduler --kubeconfig FILE [--config FILE]` runs it alone; `kubik
server` runs it beside the API server and the controllers. See
`kubik.scheduler.config` for the configuration file and
`kubik.scheduler.framework` for writing plugins.
"""
