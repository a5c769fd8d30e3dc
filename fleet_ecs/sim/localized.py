"""The texts a simulated Windows host prints, per display language.

Windows localizes the words of ``netsh``, .NET exception messages, DnsClient errors and the
WinHTTP system messages, but never the codes beside them (WebExceptionStatus names, WSA and
WinHTTP numbers, DNS native codes): the simulator reproduces exactly that split, so that a
parser that reads words instead of codes fails on a localized host as it would in the field.

Provenance of each wording is noted per language. "seen" means the text was found in public
transcripts or parsers of real output; "unverified" means it is a plausible translation written
for the simulator, not a captured output. The English texts are the ones the simulator has
always printed (see ``windows_text``). Layout quirks reproduced on purpose: the English ``netsh
winhttp show proxy`` pads its labels into a column, while German, French and Spanish collapse
the padding, and Japanese and Chinese keep it only on the bypass line (seen).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Texts:
    """Every localized wording the simulator needs, for one display language."""

    # netsh winhttp show proxy
    winhttp_header: str
    winhttp_direct: str
    winhttp_server_label: str  # label plus the separator up to the value
    winhttp_bypass_label: str
    winhttp_none: str
    # netsh trace show status / start / stop
    trace_none: str
    trace_config: str
    trace_labels: tuple[str, str, str, str, str, str]  # status, file, append, circular, max, report
    trace_running: str
    trace_off: str
    trace_on: str
    trace_disabled: str
    trace_merging: str
    trace_location: str  # "... = {path}"
    trace_stopped: str
    elevation_required: str  # netsh, not elevated (Win32 ERROR_ELEVATION_REQUIRED wording)
    # Resolve-DnsName
    dns_name_error: str  # "{host} : ..."
    # .NET HttpWebRequest / sockets
    name_unresolved: str  # "... '{host}'"
    connect_failure: str
    socket_timeout: str  # "... {ip}:{port}"
    socket_refused: str  # "... {ip}:{port}"
    protocol_error: str  # "... ({code}) {text}."
    proxy_auth_text: str  # the reason text .NET puts in a 407 message
    # WinHTTP system messages (FormatMessage on winhttp.dll), by error number
    winhttp: dict[int, str]
    # MpCmdRun -DisplayECSConnection, the lines around "ECS Url:" (invented layout, §1.1)
    mpcmdrun_header: str
    mpcmdrun_status: str


_EN = Texts(
    winhttp_header="Current WinHTTP proxy settings:",
    winhttp_direct="Direct access (no proxy server).",
    winhttp_server_label="Proxy Server(s) :  ",
    winhttp_bypass_label="Bypass List     :  ",
    winhttp_none="(none)",
    trace_none="There is no trace session currently in progress.",
    trace_config="Trace configuration:",
    trace_labels=("Status:", "Trace File:", "Append:", "Circular:", "Max Size:", "Report:"),
    trace_running="Running",
    trace_off="Off",
    trace_on="On",
    trace_disabled="Disabled",
    trace_merging="Merging traces ... done",
    trace_location="File location = {path}",
    trace_stopped="Tracing session was successfully stopped.",
    elevation_required="The requested operation requires elevation (Run as administrator).",
    dns_name_error="{host} : DNS name does not exist",
    name_unresolved="The remote name could not be resolved: '{host}'",
    connect_failure="Unable to connect to the remote server",
    socket_timeout=(
        "A connection attempt failed because the connected party did not properly respond after "
        "a period of time, or established connection failed because connected host has failed "
        "to respond {ip}:{port}"
    ),
    socket_refused=(
        "No connection could be made because the target machine actively refused it {ip}:{port}"
    ),
    protocol_error="The remote server returned an error: ({code}) {text}.",
    proxy_auth_text="Proxy Authentication Required",
    winhttp={
        12002: "The operation timed out",
        12007: "The server name or address could not be resolved",
        12029: "A connection with the server could not be established",
        12030: "The connection with the server was terminated abnormally",
        12175: "A security error occurred",
    },
    mpcmdrun_header="ECS connection information for Microsoft Defender Core service:",
    mpcmdrun_status="ECS connection status: Connected",
)

# German. Seen: the winhttp header and direct line (several parsers of German hosts), the DNS
# error (Resolve-DnsName transcripts), "Der Remotename konnte nicht aufgelöst werden".
# Unverified: netsh labels, every netsh trace text, the socket and WinHTTP messages.
_DE = Texts(
    winhttp_header="Aktuelle WinHTTP-Proxyeinstellungen:",
    winhttp_direct="Direkter Zugriff (kein Proxyserver).",
    winhttp_server_label="Proxyserver:  ",
    winhttp_bypass_label="Umgehungsliste:  ",
    winhttp_none="(keine)",
    trace_none="Zurzeit wird keine Ablaufverfolgungssitzung ausgeführt.",
    trace_config="Ablaufverfolgungskonfiguration:",
    trace_labels=("Status:", "Ablaufverfolgungsdatei:", "Anfügen:", "Zirkulär:",
                  "Maximale Größe:", "Bericht:"),
    trace_running="Wird ausgeführt",
    trace_off="Aus",
    trace_on="Ein",
    trace_disabled="Deaktiviert",
    trace_merging="Ablaufverfolgungen werden zusammengeführt ... abgeschlossen",
    trace_location="Dateispeicherort = {path}",
    trace_stopped="Die Ablaufverfolgungssitzung wurde erfolgreich beendet.",
    elevation_required=(
        "Für den angeforderten Vorgang sind erhöhte Rechte erforderlich (Als Administrator "
        "ausführen)."
    ),
    dns_name_error="{host} : DNS-Name ist nicht vorhanden",
    name_unresolved="Der Remotename konnte nicht aufgelöst werden: '{host}'",
    connect_failure="Die Verbindung mit dem Remoteserver kann nicht hergestellt werden.",
    socket_timeout=(
        "Ein Verbindungsversuch ist fehlgeschlagen, da die Gegenstelle nach einer bestimmten "
        "Zeitspanne nicht richtig reagiert hat, oder die hergestellte Verbindung war "
        "fehlerhaft, da der verbundene Host nicht reagiert hat {ip}:{port}"
    ),
    socket_refused=(
        "Es konnte keine Verbindung hergestellt werden, da der Zielcomputer die Verbindung "
        "verweigerte {ip}:{port}"
    ),
    protocol_error="Der Remoteserver hat einen Fehler zurückgegeben: ({code}) {text}.",
    proxy_auth_text="Proxyauthentifizierung erforderlich",
    winhttp={
        12002: "Das Zeitlimit für den Vorgang wurde überschritten",
        12007: "Der Servername oder die Serveradresse konnte nicht aufgelöst werden",
        12029: "Es konnte keine Verbindung mit dem Server hergestellt werden",
        12030: "Die Verbindung mit dem Server wurde unerwartet beendet",
        12175: "Ein Sicherheitsfehler ist aufgetreten",
    },
    mpcmdrun_header="ECS-Verbindungsinformationen für den Microsoft Defender Core-Dienst:",
    mpcmdrun_status="ECS-Verbindungsstatus: Verbunden",
)

# French. Seen: the winhttp header (two parsers; the direct line is quoted both as "pas de" and
# "sans serveur proxy"), "(407) Authentification proxy requise" and "Le serveur distant a
# retourné une erreur". Unverified: the rest.
_FR = Texts(
    winhttp_header="Paramètres de proxy WinHTTP actuels :",
    winhttp_direct="Accès direct (pas de serveur proxy).",
    winhttp_server_label="Serveur(s) proxy :  ",
    winhttp_bypass_label="Liste de contournement :  ",
    winhttp_none="(aucun)",
    trace_none="Aucune session de suivi n’est actuellement en cours.",
    trace_config="Configuration du suivi :",
    trace_labels=("État :", "Fichier de suivi :", "Ajout :", "Circulaire :",
                  "Taille maximale :", "Rapport :"),
    trace_running="En cours d’exécution",
    trace_off="Désactivé",
    trace_on="Activé",
    trace_disabled="Désactivé",
    trace_merging="Fusion des suivis ... terminé",
    trace_location="Emplacement du fichier = {path}",
    trace_stopped="La session de suivi a été arrêtée.",
    elevation_required=(
        "L’opération demandée nécessite une élévation (Exécuter en tant qu’administrateur)."
    ),
    dns_name_error="{host} : Le nom DNS n’existe pas",
    name_unresolved="Le nom distant n'a pas pu être résolu: '{host}'",
    connect_failure="Impossible de se connecter au serveur distant",
    socket_timeout=(
        "Une tentative de connexion a échoué car le parti connecté n’a pas répondu "
        "convenablement au-delà d’une certaine durée ou une connexion établie a échoué car "
        "l’hôte de connexion n’a pas répondu {ip}:{port}"
    ),
    socket_refused=(
        "Aucune connexion n’a pu être établie car l’ordinateur cible l’a expressément refusée "
        "{ip}:{port}"
    ),
    protocol_error="Le serveur distant a retourné une erreur : ({code}) {text}.",
    proxy_auth_text="Authentification proxy requise",
    winhttp={
        12002: "Le délai d’attente de l’opération est dépassé",
        12007: "Le nom ou l’adresse du serveur n’a pas pu être résolu",
        12029: "Une connexion avec le serveur n’a pas pu être établie",
        12030: "La connexion avec le serveur a été interrompue anormalement",
        12175: "Une erreur de sécurité s’est produite",
    },
    mpcmdrun_header="Informations de connexion ECS du service Microsoft Defender Core :",
    mpcmdrun_status="État de la connexion ECS : Connecté",
)

# Spanish. Seen: the winhttp direct line, "No se puede resolver el nombre remoto" and "No es
# posible conectar con el servidor remoto". Unverified: the rest, the DNS error included.
_ES = Texts(
    winhttp_header="Configuración actual del proxy de WinHTTP:",
    winhttp_direct="Acceso directo (sin servidor proxy).",
    winhttp_server_label="Servidores proxy:  ",
    winhttp_bypass_label="Lista de omisiones:  ",
    winhttp_none="(ninguno)",
    trace_none="No hay ninguna sesión de seguimiento en curso.",
    trace_config="Configuración de seguimiento:",
    trace_labels=("Estado:", "Archivo de seguimiento:", "Anexar:", "Circular:",
                  "Tamaño máximo:", "Informe:"),
    trace_running="En ejecución",
    trace_off="Desactivado",
    trace_on="Activado",
    trace_disabled="Deshabilitado",
    trace_merging="Combinando seguimientos ... listo",
    trace_location="Ubicación del archivo = {path}",
    trace_stopped="La sesión de seguimiento se detuvo correctamente.",
    elevation_required="La operación solicitada requiere elevación (Ejecutar como administrador).",
    dns_name_error="{host} : El nombre DNS no existe",
    name_unresolved="No se puede resolver el nombre remoto: '{host}'",
    connect_failure="No es posible conectar con el servidor remoto",
    socket_timeout=(
        "Se produjo un error durante el intento de conexión ya que la parte conectada no "
        "respondió adecuadamente tras un periodo de tiempo, o bien se produjo un error en la "
        "conexión establecida ya que el host conectado no ha podido responder {ip}:{port}"
    ),
    socket_refused=(
        "No se puede establecer una conexión ya que el equipo de destino denegó expresamente "
        "dicha conexión {ip}:{port}"
    ),
    protocol_error="Error en el servidor remoto: ({code}) {text}.",
    proxy_auth_text="Se requiere autenticación del proxy",
    winhttp={
        12002: "Se agotó el tiempo de espera de la operación",
        12007: "No se pudo resolver el nombre o la dirección del servidor",
        12029: "No se pudo establecer una conexión con el servidor",
        12030: "La conexión con el servidor terminó de forma anómala",
        12175: "Se produjo un error de seguridad",
    },
    mpcmdrun_header="Información de conexión ECS del servicio Microsoft Defender Core:",
    mpcmdrun_status="Estado de la conexión ECS: Conectado",
)

# Japanese. Seen: the whole of netsh winhttp show proxy (header, direct line, both labels with
# their padding). Unverified: the rest.
_JA = Texts(
    winhttp_header="現在の WinHTTP プロキシ設定:",
    winhttp_direct="直接アクセス (プロキシ サーバーなし)。",
    winhttp_server_label="プロキシ サーバー:  ",
    winhttp_bypass_label="バイパス一覧     :  ",
    winhttp_none="(なし)",
    trace_none="現在進行中のトレース セッションはありません。",
    trace_config="トレース構成:",
    trace_labels=("状態:", "トレース ファイル:", "追加:", "循環:", "最大サイズ:", "レポート:"),
    trace_running="実行中",
    trace_off="オフ",
    trace_on="オン",
    trace_disabled="無効",
    trace_merging="トレースをマージしています ... 完了",
    trace_location="ファイルの場所 = {path}",
    trace_stopped="トレース セッションは正常に停止されました。",
    elevation_required="要求された操作には管理者特権が必要です (管理者として実行)。",
    dns_name_error="{host} : DNS 名が存在しません",
    name_unresolved="リモート名を解決できませんでした。: '{host}'",
    connect_failure="リモート サーバーに接続できません。",
    socket_timeout=(
        "接続済みの呼び出し先が一定の時間を過ぎても正しく応答しなかったため、接続できませんでした。"
        "または接続済みのホストが応答しなかったため、確立された接続は失敗しました。 {ip}:{port}"
    ),
    socket_refused="対象のコンピューターによって拒否されたため、接続できませんでした。 {ip}:{port}",
    protocol_error="リモート サーバーがエラーを返しました: ({code}) {text}",
    proxy_auth_text="プロキシ認証が必要です",
    winhttp={
        12002: "操作はタイムアウトしました",
        12007: "サーバー名またはアドレスを解決できませんでした",
        12029: "サーバーとの接続を確立できませんでした",
        12030: "サーバーとの接続が異常終了しました",
        12175: "セキュリティ エラーが発生しました",
    },
    mpcmdrun_header="Microsoft Defender コア サービスの ECS 接続情報:",
    mpcmdrun_status="ECS 接続の状態: 接続済み",
)

# Simplified Chinese. Seen: the whole of netsh winhttp show proxy, and the socket timeout
# (WSAETIMEDOUT) message. Unverified: the rest.
_ZH = Texts(
    winhttp_header="当前的 WinHTTP 代理服务器设置:",
    winhttp_direct="直接访问(没有代理服务器)。",
    winhttp_server_label="代理服务器:  ",
    winhttp_bypass_label="绕过列表     :  ",
    winhttp_none="(无)",
    trace_none="当前没有正在进行的跟踪会话。",
    trace_config="跟踪配置:",
    trace_labels=("状态:", "跟踪文件:", "追加:", "循环:", "最大大小:", "报告:"),
    trace_running="正在运行",
    trace_off="关闭",
    trace_on="打开",
    trace_disabled="已禁用",
    trace_merging="正在合并跟踪 ... 完成",
    trace_location="文件位置 = {path}",
    trace_stopped="已成功停止跟踪会话。",
    elevation_required="请求的操作需要提升(作为管理员运行)。",
    dns_name_error="{host} : DNS 名称不存在",
    name_unresolved="未能解析此远程名称: '{host}'",
    connect_failure="无法连接到远程服务器",
    socket_timeout=(
        "由于连接方在一段时间后没有正确答复或连接的主机没有反应，连接尝试失败。 {ip}:{port}"
    ),
    socket_refused="由于目标计算机积极拒绝，无法连接。 {ip}:{port}",
    protocol_error="远程服务器返回错误: ({code}) {text}。",
    proxy_auth_text="需要代理身份验证",
    winhttp={
        12002: "操作超时",
        12007: "无法解析服务器的名称或地址",
        12029: "无法与服务器建立连接",
        12030: "与服务器的连接意外终止",
        12175: "发生安全错误",
    },
    mpcmdrun_header="Microsoft Defender 核心服务的 ECS 连接信息:",
    mpcmdrun_status="ECS 连接状态: 已连接",
)

TEXTS: dict[str, Texts] = {"en": _EN, "de": _DE, "fr": _FR, "es": _ES, "ja": _JA, "zh": _ZH}
LANGUAGES = tuple(TEXTS)


def texts(language: str) -> Texts:
    """The wordings of ``language`` (``en``, ``de``, ``fr``, ``es``, ``ja``, ``zh``)."""
    try:
        return TEXTS[language]
    except KeyError:
        raise ValueError(f"no simulated texts for language {language!r}") from None
