-- hotstandby: hold a request while no node of the backend is UP, instead of answering 503.
--
-- During a planned switchover (R7) the old ACTIVE stops before the target starts, so for a few
-- check intervals HAProxy sees no node that answers mod=FT 200. A request that arrives then waits
-- here, polling every 10 ms, until a node is UP (it then goes on to it as usual) or until
-- max_ms has passed (it then gets HAProxy's own 503, as without the hold).
--
-- Loaded by `lua-load` in the haproxy.cfg that `hotstandby render haproxy --hold-lua PATH` prints;
-- used there as: http-request lua.hotstandby_hold <backend> <max_ms> if { nbsrv(<backend>) eq 0 }
core.register_action("hotstandby_hold", { "http-req" }, function(txn, backend, max_ms)
    local limit = tonumber(max_ms) or 0
    local waited = 0
    while waited < limit and txn.f:nbsrv(backend) == 0 do
        core.msleep(10)
        waited = waited + 10
    end
end, 2)
