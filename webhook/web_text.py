"""The web form's words in English and Japanese, and which language a request gets."""

from __future__ import annotations

LANGUAGES = ("en", "ja")
DEFAULT_LANGUAGE = "en"

# Both languages have exactly the same keys (tests/test_web_form.py checks it). `{name}` parts are
# filled in by the page's script.
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "LeadersBoard — submit a model",
        "heading": "Submit a model",
        "intro": "Upload the files of one submission folder. They are committed to your branch, "
                 "checked with the same rules as a git push, and evaluated.",
        "token": "API token",
        "token_hint": "kept in this browser tab only",
        "forget_token": "Forget token",
        "files": "Files",
        "files_hint": "main.py, config.yaml and whatever else the folder holds",
        "folder": "Folder name",
        "folder_hint": "optional: from the metadata's method, else generated",
        "entrypoint": "Entrypoint",
        "config_file": "Config file",
        "metadata": "Metadata (JSON)",
        "resource_class": "Resource class",
        "submit": "Submit",
        "sending": "Submitting…",
        "accepted": "Accepted: {folder} on {branch}, submission {submission}.",
        "accepted_job": "Job {job} is pending.",
        "error": "Refused ({status}):",
        "retry_after": "Try again in {seconds} s.",
        "network_error": "The server could not be reached.",
        "need_token": "Enter your API token first.",
        "bad_token": "The token was not accepted (invalid or revoked).",
        "jobs_heading": "Your jobs",
        "jobs_hint": "Refreshed every 5 seconds.",
        "jobs_need_token": "Enter your token to see your jobs.",
        "no_jobs": "No jobs yet.",
        "col_status": "Status",
        "col_submission": "Submission",
        "col_benchmark": "Benchmark",
        "col_created": "Submitted",
        "col_metrics": "Metrics",
        "col_job": "Job",
        "show_logs": "Show logs",
        "logs_of": "Logs of job {job}",
        "logs_empty": "(no output yet)",
        "close_logs": "Close",
        "status_pending": "⏳ pending",
        "queue_position": "#{n} in the {cls} queue",
        "status_running": "⏳ running",
        "status_completed": "✅ completed",
        "status_failed": "❌ failed",
        "status_cancelled": "❌ cancelled",
        "language": "Language",
    },
    "ja": {
        "title": "LeadersBoard — モデルの提出",
        "heading": "モデルを提出する",
        "intro": "提出フォルダのファイルをアップロードしてください。あなたのブランチにコミットされ、"
                 "git push と同じルールで検査されてから評価されます。",
        "token": "API トークン",
        "token_hint": "このブラウザタブの中だけに保存されます",
        "forget_token": "トークンを消去",
        "files": "ファイル",
        "files_hint": "main.py、config.yaml とフォルダに含めるその他のファイル",
        "folder": "フォルダ名",
        "folder_hint": "省略可: メタデータの method から、なければ自動生成",
        "entrypoint": "エントリポイント",
        "config_file": "設定ファイル",
        "metadata": "メタデータ (JSON)",
        "resource_class": "リソースクラス",
        "submit": "提出",
        "sending": "提出しています…",
        "accepted": "受け付けました: {branch} の {folder}、提出 {submission}。",
        "accepted_job": "ジョブ {job} は待機中です。",
        "error": "受け付けられませんでした ({status}):",
        "retry_after": "{seconds} 秒後に再試行してください。",
        "network_error": "サーバーに接続できませんでした。",
        "need_token": "先に API トークンを入力してください。",
        "bad_token": "トークンが受け付けられませんでした (無効または失効)。",
        "jobs_heading": "あなたのジョブ",
        "jobs_hint": "5 秒ごとに更新されます。",
        "jobs_need_token": "トークンを入力するとジョブが表示されます。",
        "no_jobs": "ジョブはまだありません。",
        "col_status": "状態",
        "col_submission": "提出",
        "col_benchmark": "ベンチマーク",
        "col_created": "提出日時",
        "col_metrics": "指標",
        "col_job": "ジョブ",
        "show_logs": "ログを表示",
        "logs_of": "ジョブ {job} のログ",
        "logs_empty": "(まだ出力はありません)",
        "close_logs": "閉じる",
        "status_pending": "⏳ 待機中",
        "queue_position": "{cls} キューの {n} 番目",
        "status_running": "⏳ 実行中",
        "status_completed": "✅ 完了",
        "status_failed": "❌ 失敗",
        "status_cancelled": "❌ キャンセル",
        "language": "言語",
    },
}


def pick_language(asked: str | None, accept_language: str | None) -> str:
    """`?lang=` when it names a language we have, else the best of Accept-Language, else English."""
    if asked in LANGUAGES:
        return asked
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE
