"""The web console's files: one page and plain ES modules, no build step, nothing from the internet.

The arbiter serves them (services/arbiter/console.py); the page uses only the public API (SPEC 3).

    index.html    the page: both servers, the settings form, the fault-tolerant log, two dialogs
    console.css   the vendor's colours; one column on a narrow screen
    main.js       boot: wires the pieces and runs the polling loops
    api.js        reads with a deadline, commands with the admin token (sessionStorage), dialogs
    servers.js    what each server's card says, from both nodes' own /status
    settings.js   the cluster settings form ("Validate": one PUT /config)
    log.js        the fault-tolerant log: day picker, today's tail, filter
"""
