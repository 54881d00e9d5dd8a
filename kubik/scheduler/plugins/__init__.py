"""The built-in plugins, one module each; every module of this package is loaded at start.

Each registers its classes with `kubik.scheduler.framework.register`; their
names and behaviour are upstream's plugins of the same name.
"""
