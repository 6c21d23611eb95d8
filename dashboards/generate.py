#!/usr/bin/env python3
"""Writes dashboards/openclaw-gateway.json, the Grafana dashboard.

Run it after changing a panel: `python3 dashboards/generate.py`. The thresholds
below must equal src/thresholds.rs; tests/dashboards.rs checks the JSON
against it, against a real Prometheus parser and against a real /metrics.
"""
import json
import pathlib

# src/thresholds.rs: (warning, critical)
RESPONSE_TIME_SECONDS = (0.1, 0.5)
MEMORY_USAGE_RATIO = (0.7, 0.9)
EVENT_LOOP_DELAY_SECONDS = (0.02, 0.05)
ACTIVE_CONNECTIONS = (1000, 1500)
ERROR_RATIO = (0.005, 0.02)
FD_USAGE_RATIO = (0.7, 0.9)
CLOSE_WAIT = (10, 100)
LISTEN_QUEUE_RATIO = (0.1, 0.5)

SEL = 'job=~"$job", instance=~"$instance", gateway=~"$gateway"'
DS = {"type": "prometheus", "uid": "${datasource}"}
W = 24  # grid width


def thresholds(tier=None, base="green", steps=None):
    if steps is None:
        steps = [{"color": base, "value": None}]
        if tier:
            steps += [{"color": "orange", "value": tier[0]}, {"color": "red", "value": tier[1]}]
    return {"mode": "absolute", "steps": steps}


def target(expr, legend, ref="A"):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(kind, title, exprs, unit="short", tier=None, steps=None, description="", w=8, h=8, extra=None):
    defaults = {"unit": unit, "thresholds": thresholds(tier, steps=steps)}
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line+area" if (tier or steps) else "off"},
        }
    if kind == "gauge":
        defaults["min"] = 0
        defaults["max"] = 1
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(exprs)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "gridPos": {"w": w, "h": h},
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind in ("stat", "gauge"):
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        if kind == "stat":
            p["options"].update({"colorMode": "background", "graphMode": "none", "textMode": "value_and_name"})
    if extra:
        p.update(extra)
    return p


ROWS = [
    ("Overview", [
        panel("stat", "Up", [(f"openclaw_gateway_process_up{{{SEL}}}", "{{gateway}}")],
              steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}], w=4, h=5,
              description="1 when the gateway process is found."),
        panel("stat", "Hung", [(f"openclaw_gateway_hung{{{SEL}}}", "{{gateway}}")],
              steps=[{"color": "green", "value": None}, {"color": "red", "value": 1}], w=4, h=5,
              description="Alive and listening, yet liveness probes time out or are refused."),
        panel("stat", "Ready", [(f"openclaw_gateway_ready{{{SEL}}}", "{{gateway}}")],
              steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}], w=4, h=5),
        panel("stat", "Restarts (1h)", [(f"increase(openclaw_gateway_process_restarts_total{{{SEL}}}[1h])", "{{gateway}}")],
              steps=[{"color": "green", "value": None}, {"color": "orange", "value": 1}, {"color": "red", "value": 3}], w=4, h=5),
        panel("stat", "Stale locks", [(f'openclaw_gateway_lock_files{{{SEL}, state="stale"}}', "{{gateway}}")],
              steps=[{"color": "green", "value": None}, {"color": "orange", "value": 1}], w=4, h=5),
        panel("stat", "Instances", [(f"openclaw_gateway_instances{{{SEL}}}", "{{gateway}}")],
              steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}, {"color": "red", "value": 2}], w=4, h=5,
              description="Gateway processes claiming this gateway; healthy is 1."),
    ]),
    ("Latency", [
        panel("timeseries", "Liveness probe latency p50 / p99", [
            (f'histogram_quantile(0.5, sum by (gateway, le) (rate(openclaw_gateway_probe_duration_seconds_bucket{{{SEL}, endpoint="live"}}[$__rate_interval])))', "p50 {{gateway}}"),
            (f'histogram_quantile(0.99, sum by (gateway, le) (rate(openclaw_gateway_probe_duration_seconds_bucket{{{SEL}, endpoint="live"}}[$__rate_interval])))', "p99 {{gateway}}"),
            (f'sum by (gateway) (rate(openclaw_gateway_probe_duration_seconds_sum{{{SEL}, endpoint="live"}}[$__rate_interval])) / sum by (gateway) (rate(openclaw_gateway_probe_duration_seconds_count{{{SEL}, endpoint="live"}}[$__rate_interval]))', "mean {{gateway}}"),
        ], unit="s", tier=RESPONSE_TIME_SECONDS, w=12,
            description="Response time of GET /healthz on a fresh connection. Normal < 100 ms, danger > 500 ms. The quantiles interpolate inside a bucket (600 ms probes read as ~1 s between the 0.5 and 1 bounds); the mean is exact, and the alerts count the probes slower than 100 ms and 500 ms (bucket bounds) exactly."),
        panel("timeseries", "Last probe duration", [
            (f"openclaw_gateway_probe_last_duration_seconds{{{SEL}}}", "{{gateway}} {{endpoint}}"),
        ], unit="s", tier=RESPONSE_TIME_SECONDS, w=12),
    ]),
    ("Control plane (RPC probe)", [
        panel("stat", "Control plane hung", [(f"openclaw_gateway_rpc_hung{{{SEL}}}", "{{gateway}}")],
              steps=[{"color": "green", "value": None}, {"color": "red", "value": 1}], w=4,
              description="/healthz answers, yet the last RPC probes (WebSocket handshake and a health call) timed out."),
        panel("timeseries", "RPC probe latency p50 / p99", [
            (f"histogram_quantile(0.5, sum by (gateway, le) (rate(openclaw_gateway_rpc_probe_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "p50 {{gateway}}"),
            (f"histogram_quantile(0.99, sum by (gateway, le) (rate(openclaw_gateway_rpc_probe_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "p99 {{gateway}}"),
        ], unit="s", w=10,
            description="Connect, handshake with the gateway token and the health call, on a fresh WebSocket every --probe.rpc-interval."),
        panel("timeseries", "RPC probe failures by reason", [
            (f"sum by (gateway, reason) (rate(openclaw_gateway_rpc_probe_failures_total{{{SEL}}}[$__rate_interval])) > 0", "{{gateway}} {{reason}}"),
        ], unit="ops", w=10,
            description="timeout, handshake, auth (the token was refused: never a hang), rpc_error, bad_frame."),
    ]),
    ("Event loop", [
        panel("timeseries", "Event-loop delay p99 above the sampling floor (peak)", [
            (f'openclaw_gateway_eventloop_delay_p99_seconds{{{SEL}, stat="peak"}} - on (job, instance, gateway) openclaw_gateway_eventloop_delay_floor_seconds{{{SEL}}}', "{{gateway}}"),
        ], unit="s", tier=EVENT_LOOP_DELAY_SECONDS, w=8,
            description="The gateway's own p99, peak over --collect.event-loop.interval, minus its monitor's 20 ms sampling floor. Normal < 20 ms, danger > 50 ms."),
        panel("timeseries", "Event-loop delay as reported", [
            (f'openclaw_gateway_eventloop_delay_p99_seconds{{{SEL}, stat="last"}}', "p99 {{gateway}}"),
            (f'openclaw_gateway_eventloop_delay_max_seconds{{{SEL}, stat="peak"}}', "max (peak) {{gateway}}"),
        ], unit="s", w=6),
        panel("timeseries", "Event-loop utilization and CPU", [
            (f'openclaw_gateway_eventloop_utilization_ratio{{{SEL}, stat="last"}}', "utilization {{gateway}}"),
            (f'openclaw_gateway_cpu_core_ratio{{{SEL}, stat="last"}}', "cores {{gateway}}"),
        ], unit="percentunit", w=5),
        panel("timeseries", "Event loop stalled, share of time", [
            (f'rate(openclaw_gateway_eventloop_stall_seconds_total{{{SEL}}}[5m])', "{{gateway}}"),
        ], unit="percentunit", w=5,
            description="Share of the last 5 minutes the event loop spent in stalls over 50 ms, a fully blocked loop (probes timing out) included. A counter: a stall shorter than the scrape interval, or one during which /readyz never answered, is not lost; it lands when the gateway answers again."),
    ]),
    ("Memory", [
        panel("timeseries", "Resident memory", [
            (f"openclaw_gateway_process_resident_memory_bytes{{{SEL}}}", "gateway {{gateway}}"),
            (f"openclaw_gateway_process_children_resident_memory_bytes{{{SEL}}}", "workers {{gateway}}"),
            (f"openclaw_gateway_memory_limit_bytes{{{SEL}}}", "limit ({{source}}) {{gateway}}"),
        ], unit="bytes", w=16),
        panel("gauge", "Memory, percent of limit", [
            (f"openclaw_gateway_memory_usage_ratio{{{SEL}}}", "{{gateway}}"),
        ], unit="percentunit", tier=MEMORY_USAGE_RATIO, w=8,
            description="RSS over the memory limit. Normal < 70%, danger > 90%."),
    ]),
    ("Connections", [
        panel("timeseries", "Active (established inbound) connections", [
            (f'openclaw_gateway_tcp_connections{{{SEL}, direction="inbound", state="established"}}', "{{gateway}}"),
        ], tier=ACTIVE_CONNECTIONS, w=8, description="Normal < 1000, danger > 1500."),
        panel("timeseries", "Connections by direction and state", [
            (f"sum by (gateway, direction, state) (openclaw_gateway_tcp_connections{{{SEL}}}) > 0", "{{gateway}} {{direction}} {{state}}"),
        ], w=8),
        panel("timeseries", "CLOSE_WAIT", [
            (f'openclaw_gateway_tcp_connections{{{SEL}, direction="inbound", state="close_wait"}}', "{{gateway}}"),
        ], tier=CLOSE_WAIT, w=8),
        panel("timeseries", "Accept queue, fraction of capacity", [
            (f"openclaw_gateway_listen_queue_usage_ratio{{{SEL}}}", "{{gateway}}"),
        ], unit="percentunit", tier=LISTEN_QUEUE_RATIO, w=12),
        panel("timeseries", "Host listen overflows and drops", [
            ('rate(openclaw_gateway_host_listen_overflows_total{job=~"$job", instance=~"$instance"}[$__rate_interval])', "overflows {{instance}}"),
            ('rate(openclaw_gateway_host_listen_drops_total{job=~"$job", instance=~"$instance"}[$__rate_interval])', "drops {{instance}}"),
        ], unit="ops", w=12),
    ]),
    ("Dependencies", [
        panel("timeseries", "Outbound connections by state", [
            (f'sum by (gateway, state) (openclaw_gateway_tcp_connections{{{SEL}, direction="outbound"}}) > 0', "{{gateway}} {{state}}"),
        ], w=8, description="The gateway's own connections to model providers, channels and databases. Piling up: OpenClawGatewayOutboundConnectionsPilingUp (> 100)."),
        panel("timeseries", "Outbound connecting (SYN_SENT)", [
            (f'openclaw_gateway_tcp_connections{{{SEL}, direction="outbound", state="syn_sent"}}', "{{gateway}}"),
        ], w=8, description="Handshakes an upstream has not answered. OpenClawGatewayUpstreamUnreachable pages above 5 for 1m."),
        panel("timeseries", "Outbound requests waiting", [
            (f"openclaw_gateway_outbound_waiting_connections{{{SEL}}}", "waiting {{gateway}}"),
            (f"openclaw_gateway_outbound_stalled_connections{{{SEL}}}", "60 s or more {{gateway}}"),
        ], w=8, description="Established outbound connections that sent data after the last data they received (Linux only). OpenClawGatewayUpstreamStalled pages above 5 stalled."),
        panel("timeseries", "Oldest outbound wait", [
            (f"openclaw_gateway_outbound_oldest_wait_seconds{{{SEL}}}", "{{gateway}}"),
        ], unit="s", w=12, description="The longest an outbound connection has waited for an answer since its last send (Linux only)."),
        panel("timeseries", "Upstream timeouts and connection failures in the log", [
            (f'sum by (gateway, pattern) (rate(openclaw_gateway_log_pattern_matches_total{{{SEL}, pattern=~"dependency_timeout|dependency_connect_error"}}[$__rate_interval]))', "{{gateway}} {{pattern}}"),
        ], unit="ops", w=12, description="The gateway's own fetch-timeout and failed-connection lines (model providers, channels)."),
    ]),
    ("Errors", [
        panel("timeseries", "Probe error ratio", [
            (f"sum by (gateway) (rate(openclaw_gateway_probe_failures_total{{{SEL}}}[1m])) / sum by (gateway) (rate(openclaw_gateway_probes_total{{{SEL}}}[1m]))", "{{gateway}}"),
        ], unit="percentunit", tier=ERROR_RATIO, w=12,
            description="Failed over all probes (liveness and readiness) over the last minute, the field report's 60 s error interval and the critical alert's window. Normal < 0.5%, danger > 2%."),
        panel("timeseries", "Probe failures by reason", [
            (f"sum by (gateway, endpoint, reason) (rate(openclaw_gateway_probe_failures_total{{{SEL}}}[$__rate_interval])) > 0", "{{gateway}} {{endpoint}} {{reason}}"),
        ], unit="ops", w=12),
    ]),
    ("File descriptors", [
        panel("timeseries", "Open against max", [
            (f"openclaw_gateway_process_open_fds{{{SEL}}}", "open {{gateway}}"),
            (f"openclaw_gateway_process_max_fds{{{SEL}}}", "max {{gateway}}"),
        ], w=8),
        panel("gauge", "File descriptors, percent of limit", [
            (f"openclaw_gateway_process_open_fds{{{SEL}}} / openclaw_gateway_process_max_fds{{{SEL}}}", "{{gateway}}"),
        ], unit="percentunit", tier=FD_USAGE_RATIO, w=8),
        panel("timeseries", "Open fds by type", [
            (f"openclaw_gateway_process_open_fds_by_type{{{SEL}}}", "{{gateway}} {{type}}"),
        ], w=8),
    ]),
    ("Logs", [
        panel("timeseries", "WARN / ERROR lines per second", [
            (f'sum by (gateway, level) (rate(openclaw_gateway_log_messages_total{{{SEL}, level=~"warn|error|fatal"}}[$__rate_interval]))', "{{gateway}} {{level}}"),
        ], unit="ops", w=12),
        panel("timeseries", "Field-report log patterns per second", [
            (f"sum by (gateway, pattern) (rate(openclaw_gateway_log_pattern_matches_total{{{SEL}}}[$__rate_interval]))", "{{gateway}} {{pattern}}"),
        ], unit="ops", w=12),
    ]),
    ("Watchdog", [
        panel("timeseries", "Remediations (1h)", [
            (f"sum by (gateway, result) (increase(openclaw_gateway_remediations_total{{{SEL}}}[1h])) > 0", "{{gateway}} {{result}}"),
        ], w=8, description="Watchdog restarts by result in the last hour: success, failed, skipped_budget (a hang met a spent budget), dry_run. Only gateways with a remediation: block."),
        panel("stat", "Restart budget left", [
            (f"openclaw_gateway_remediation_budget_remaining{{{SEL}}}", "{{gateway}}"),
        ], steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}], w=8,
              description="Restarts the watchdog may still make in its budget window; 0: it no longer acts."),
        panel("timeseries", "Hang to verified ready", [
            (f"histogram_quantile(0.5, sum by (gateway, le) (rate(openclaw_gateway_recovery_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "p50 {{gateway}}"),
            (f"max by (gateway) (rate(openclaw_gateway_recovery_duration_seconds_sum{{{SEL}}}[1h]) / rate(openclaw_gateway_recovery_duration_seconds_count{{{SEL}}}[1h]))", "mean 1h {{gateway}}"),
        ], unit="s", w=8, description="From the watchdog's first sight of the hang to the restarted gateway verified ready."),
    ]),
    ("Exporter health", [
        panel("timeseries", "Collector success", [
            (f"openclaw_gateway_collector_success{{{SEL}}}", "{{gateway}} {{collector}}"),
        ], w=8),
        panel("timeseries", "Collector duration", [
            (f"openclaw_gateway_collector_duration_seconds{{{SEL}}}", "{{gateway}} {{collector}}"),
        ], unit="s", w=8),
        panel("timeseries", "Skipped /proc reads per second", [
            (f"rate(openclaw_gateway_collector_skipped_reads_total{{{SEL}}}[$__rate_interval]) > 0",
             "{{gateway}} {{collector}} {{reason}}"),
        ], w=8),
        panel("stat", "Exporter version", [
            ('openclaw_gateway_exporter_build_info{job=~"$job", instance=~"$instance"}', "{{version}} ({{revision}})"),
        ], w=8, h=8, steps=[{"color": "blue", "value": None}]),
    ]),
]


def variable(name, label, query):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def build():
    panels, next_id, y = [], 1, 0
    for title, row in ROWS:
        panels.append({"type": "row", "title": title, "id": next_id, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": W, "h": 1}, "panels": []})
        next_id += 1
        y += 1
        x, row_h = 0, 0
        for p in row:
            w, h = p["gridPos"]["w"], p["gridPos"]["h"]
            if x + w > W:
                x, y, row_h = 0, y + row_h, 0
            p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
            p["id"] = next_id
            next_id += 1
            x += w
            row_h = max(row_h, h)
            panels.append(p)
        y += row_h
    return {
        "title": "OpenClaw Gateway",
        "uid": "openclaw-gateway",
        "description": "OpenClaw gateways watched from the outside by openclaw-gateway-exporter. Thresholds are the field report's.",
        "tags": ["openclaw", "gateway"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": ""},
            variable("job", "Job", "label_values(openclaw_gateway_exporter_build_info, job)"),
            variable("instance", "Instance", 'label_values(openclaw_gateway_exporter_build_info{job=~"$job"}, instance)'),
            variable("gateway", "Gateway", 'label_values(openclaw_gateway_process_up{job=~"$job", instance=~"$instance"}, gateway)'),
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = pathlib.Path(__file__).with_name("openclaw-gateway.json")
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {out}")
