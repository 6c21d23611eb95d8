<#
.SYNOPSIS
    Installs openclaw-gateway-exporter as a Windows service.

.DESCRIPTION
    Run from an elevated PowerShell, as the user whose OpenClaw gateway is
    watched (the config's %USERPROFILE% and %TEMP% are that user's):

        powershell -ExecutionPolicy Bypass -File packaging\windows\install.ps1

    - copies the binary to %ProgramFiles%\openclaw-gateway-exporter\;
    - copies config.yml to %ProgramData%\openclaw-gateway-exporter\config.yml,
      with %USERPROFILE% and %TEMP% expanded (an existing one is kept), and
      checks it with --config.check;
    - registers the service "openclaw-gateway-exporter": LocalSystem, started
      at boot, restarted on failure, logging to
      %ProgramData%\openclaw-gateway-exporter\exporter.log;
    - starts it. Metrics: http://localhost:9789/metrics.

    Run again to update the binary: the service is stopped, the binary
    replaced, the service started; its registration and config are kept.

.PARAMETER Binary
    The exporter built for Windows. Default: target\release\ in this repository.

.PARAMETER ListenAddress
    --web.listen-address. Default ":9789", every interface.

.PARAMETER OpenFirewall
    Allow inbound TCP to the listen port (for a Prometheus on another host).
#>
[CmdletBinding()]
param(
    [string]$Binary = (Join-Path $PSScriptRoot '..\..\target\release\openclaw-gateway-exporter.exe'),
    [string]$ListenAddress = ':9789',
    [switch]$OpenFirewall
)
$ErrorActionPreference = 'Stop'

$Name = 'openclaw-gateway-exporter'
$InstallDir = Join-Path $env:ProgramFiles $Name
$DataDir = Join-Path $env:ProgramData $Name
$Exe = Join-Path $InstallDir "$Name.exe"
$ConfigFile = Join-Path $DataDir 'config.yml'
$LogFile = Join-Path $DataDir 'exporter.log'

$admin = [Security.Principal.WindowsPrincipal]::new([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $admin.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run install.ps1 from an elevated PowerShell (Run as administrator).'
}
if (-not (Test-Path -LiteralPath $Binary -PathType Leaf)) {
    throw "No exporter binary at $Binary; build it (cargo build --release) or pass -Binary."
}

$existing = Get-Service -Name $Name -ErrorAction SilentlyContinue
if ($existing) {
    Stop-Service -Name $Name
}

New-Item -ItemType Directory -Force -Path $InstallDir, $DataDir | Out-Null
Copy-Item -LiteralPath $Binary -Destination $Exe -Force
if (-not (Test-Path -LiteralPath $ConfigFile)) {
    $sample = Get-Content -Raw -LiteralPath (Join-Path $PSScriptRoot 'config.yml')
    # UTF-8 without a BOM, whatever the PowerShell version: a user name may
    # not be ASCII.
    [IO.File]::WriteAllText($ConfigFile, [Environment]::ExpandEnvironmentVariables($sample),
        [Text.UTF8Encoding]::new($false))
    Write-Host "Wrote $ConfigFile"
}
& $Exe --config.file $ConfigFile --web.listen-address $ListenAddress --config.check
if ($LASTEXITCODE -ne 0) {
    throw "$ConfigFile does not check out (above); fix it and run install.ps1 again."
}

if (-not $existing) {
    # New-Service rather than `sc.exe create`: it takes the command line as
    # one string, where PowerShell's quoting of native arguments would mangle
    # sc.exe's binPath= "\"...\" ..." (the quotes a path with spaces needs).
    $command = "`"$Exe`" --windows-service --config.file `"$ConfigFile`" " +
        "--log.file `"$LogFile`" --web.listen-address $ListenAddress"
    New-Service -Name $Name -BinaryPathName $command -StartupType Automatic `
        -DisplayName 'OpenClaw gateway exporter' `
        -Description 'Prometheus exporter that watches OpenClaw gateways from the outside.' |
        Out-Null
    # Restart after 5 s, 5 s, then 60 s; the count resets after a day.
    sc.exe failure $Name reset= 86400 actions= restart/5000/restart/5000/restart/60000 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "sc.exe failure $Name failed ($LASTEXITCODE)." }
    # Count a stop with an error (the port taken) as a failure too, not only
    # the process dying: the exporter then reports a service exit code.
    sc.exe failureflag $Name 1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "sc.exe failureflag $Name failed ($LASTEXITCODE)." }
}
Start-Service -Name $Name

$port = ($ListenAddress -split ':')[-1]
Write-Host "Started $Name; metrics on http://localhost:$port/metrics, log in $LogFile."
if ($OpenFirewall) {
    if (-not (Get-NetFirewallRule -Name $Name -ErrorAction SilentlyContinue)) {
        New-NetFirewallRule -Name $Name -DisplayName 'OpenClaw gateway exporter' `
            -Direction Inbound -Protocol TCP -LocalPort $port -Action Allow | Out-Null
    }
    Write-Host "Inbound TCP $port allowed (firewall rule $Name)."
} else {
    Write-Host "For a Prometheus on another host, allow inbound TCP ${port}: run again with -OpenFirewall."
}
