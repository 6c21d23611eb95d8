<#
.SYNOPSIS
    Removes the openclaw-gateway-exporter service that install.ps1 installed.

.DESCRIPTION
    Run from an elevated PowerShell. Stops and deletes the service, its
    firewall rule and %ProgramFiles%\openclaw-gateway-exporter\. The config
    and the log in %ProgramData%\openclaw-gateway-exporter\ are kept unless
    -RemoveData is given.
#>
[CmdletBinding()]
param([switch]$RemoveData)
$ErrorActionPreference = 'Stop'

$Name = 'openclaw-gateway-exporter'
if (Get-Service -Name $Name -ErrorAction SilentlyContinue) {
    Stop-Service -Name $Name
    sc.exe delete $Name | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "sc.exe delete $Name failed ($LASTEXITCODE)." }
}
Remove-NetFirewallRule -Name $Name -ErrorAction SilentlyContinue
Remove-Item -Recurse -Force -LiteralPath (Join-Path $env:ProgramFiles $Name) -ErrorAction SilentlyContinue
if ($RemoveData) {
    Remove-Item -Recurse -Force -LiteralPath (Join-Path $env:ProgramData $Name) -ErrorAction SilentlyContinue
}
Write-Host "Removed $Name."
