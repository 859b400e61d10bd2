//! The wire shapes, in and out, checked without a socket.

use serde_json::json;

use super::*;

fn routed(text: &str) -> Routed {
    match parse(text) {
        Ok(Inbound::Routed(routed)) => routed,
        other => panic!("expected a routed message, got {other:?}"),
    }
}

fn code_of(frame: serde_json::Value) -> ErrorCode {
    parse(&frame.to_string()).unwrap_err().code()
}

#[test]
fn malformed_frames_get_precise_errors() {
    assert_eq!(parse("{nope"), Err(ParseError::InvalidJson));
    assert_eq!(parse("[1,2]"), Err(ParseError::NotAnObject));
    assert_eq!(parse("\"login\""), Err(ParseError::NotAnObject));
    assert_eq!(parse("{}"), Err(ParseError::MissingType));
    assert_eq!(parse(r#"{"type":5}"#), Err(ParseError::MissingType));
    let err = parse(r#"{"type":"dance"}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownType);
    assert_eq!(err.to_string(), "Command not found: dance");
}

#[test]
fn server_only_types_are_forbidden_even_with_a_target() {
    for kind in SERVER_ONLY_TYPES {
        let frame = json!({"type": kind, "target": "bob"});
        assert_eq!(code_of(frame), ErrorCode::ForbiddenType, "{kind}");
    }
}

#[test]
fn types_outside_the_allow_list_are_unknown_even_with_a_target() {
    // `state` is what the page calls its own connection state; `replaced` and the rest are
    // names a page might act on. None of them is relayed.
    for kind in [
        "state",
        "replaced",
        "message-any",
        "ping-me",
        "Video-Offer",
        "",
    ] {
        let frame = json!({"type": kind, "target": "alice", "state": "replaced"});
        let err = parse(&frame.to_string()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownType, "{kind:?}");
        assert_eq!(err.to_string(), format!("Command not found: {kind}"));
    }
}

#[test]
fn every_allow_listed_type_is_relayed() {
    let listed: Vec<&str> = relayed_types().collect();
    assert_eq!(listed.len(), 13);
    for kind in listed {
        let frame = json!({"type": kind, "target": "bob", "name": "bob"});
        assert!(
            matches!(parse(&frame.to_string()), Ok(Inbound::Routed(_))),
            "{kind}"
        );
    }
}

#[test]
fn call_signals_parse_into_their_kind() {
    let msg = routed(r#"{"type":"call-request","target":"bob","extra":[1]}"#);
    let Routed::Call { kind, target, body } = msg else {
        panic!("call")
    };
    assert_eq!(kind, CallKind::CallRequest);
    assert_eq!(target.as_deref(), Some("bob"));
    assert_eq!(
        body.to_map()["extra"],
        json!([1]),
        "the body is relayed whole"
    );
    assert_eq!(CallKind::VideoOffer.effect(), CallEffect::Starts);
    assert_eq!(CallKind::CallMedia.effect(), CallEffect::Relearns);
    assert_eq!(CallKind::CallCancel.effect(), CallEffect::Ends);
    assert_eq!(CallKind::CallRequest.effect(), CallEffect::None);
}

#[test]
fn only_hang_up_and_leave_may_omit_the_target() {
    // MDN's hangUpCall() clears targetUsername before it sends.
    let msg = routed(r#"{"type":"hang-up","name":"alice","target":null}"#);
    assert!(matches!(
        msg,
        Routed::Call {
            kind: CallKind::HangUp,
            target: None,
            ..
        }
    ));
    let msg = routed(r#"{"type":"leave"}"#);
    assert!(matches!(
        msg,
        Routed::Tutorial {
            kind: TutorialKind::Leave,
            target: None,
            ..
        }
    ));
    let err = parse(r#"{"type":"video-offer","sdp":{}}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MissingTarget);
    assert_eq!(
        code_of(json!({"type":"offer","offer":{}})),
        ErrorCode::MissingTarget
    );
}

#[test]
fn both_login_dialects_parse() {
    let Ok(Inbound::Login(login)) =
        parse(r#"{"type":"login","name":"Ann","access_code":"c","token":"t"}"#)
    else {
        panic!("login")
    };
    assert_eq!(login.dialect, Dialect::Tutorial);
    assert_eq!(login.name, "Ann");
    assert_eq!(login.access_code.as_deref(), Some("c"));
    assert_eq!(login.token.as_deref(), Some("t"));
    let Ok(Inbound::Login(login)) = parse(r#"{"type":"username","name":"Bo","id":3}"#) else {
        panic!("username")
    };
    assert_eq!(login.dialect, Dialect::Mdn);
    assert_eq!(login.token, None);
    let Ok(Inbound::Login(login)) = parse(r#"{"type":"login","name":7}"#) else {
        panic!("login")
    };
    assert_eq!(
        login.name, "",
        "a non-string name is refused later as invalid"
    );
}

#[test]
fn tutorial_messages_use_name_as_target() {
    let msg = routed(r#"{"type":"offer","name":"bob","offer":{"sdp":"x"}}"#);
    assert_eq!(
        msg,
        Routed::Tutorial {
            kind: TutorialKind::Offer,
            target: Some("bob".into()),
            payload: Relayed::tutorial(TutorialKind::Offer, Some(r#"{"sdp":"x"}"#))
        }
    );
    let Routed::Tutorial { kind, payload, .. } = routed(r#"{"type":"leave","name":"bob"}"#) else {
        panic!("leave")
    };
    assert_eq!((kind, payload.payload()), (TutorialKind::Leave, None));
}

#[test]
fn echoed_types_are_bounded() {
    let long = "x".repeat(10_000);
    let err = parse(&json!({"type": long}).to_string()).unwrap_err();
    assert!(err.to_string().len() < 100);
}

const LIMITS: Limits = Limits {
    name_max_chars: 20,
    chat_max_chars: 500,
};

#[test]
fn everything_a_peer_caused_carries_from_and_server_events_do_not() {
    let Routed::Call { body, .. } =
        routed(r#"{"type":"video-offer","from":"mallory","name":"mallory","target":"bob"}"#)
    else {
        panic!("call")
    };
    let relayed: serde_json::Value =
        serde_json::from_str(body.finish("ann", None).as_str()).expect("json");
    assert_eq!(
        relayed,
        json!({"type":"video-offer","name":"ann","from":"ann","target":"bob"})
    );
    let tutorial = Relayed::tutorial(TutorialKind::Answer, Some(r#"{"sdp": "y"}"#));
    let tutorial: serde_json::Value =
        serde_json::from_str(tutorial.finish("ann", None).as_str()).expect("json");
    assert_eq!(
        tutorial,
        json!({"type":"answer","answer":{"sdp":"y"},"name":"ann","from":"ann"})
    );
    let hang_up = ServerMsg::HangUp {
        name: "ann".into(),
        target: "bob".into(),
    };
    assert_eq!(hang_up.to_json()["from"], json!("ann"));
    let chat = ServerMsg::Chat {
        name: "ann".into(),
        text: "hi".into(),
        date: 1,
    };
    assert_eq!(chat.to_json()["from"], json!("ann"));
    let server_events = [
        ServerMsg::Id { id: 1 },
        ServerMsg::UserList(vec!["ann".to_string()].into()),
        ServerMsg::RejectUsername { name: "a2".into() },
        ServerMsg::error(ErrorCode::UnknownType, "x"),
        ServerMsg::LoginFailed {
            reason: LoginFailure::NameTaken,
            limits: LIMITS,
        },
    ];
    for msg in server_events {
        assert!(msg.to_json().get("from").is_none(), "{msg:?}");
    }
}

#[test]
fn login_replies_carry_the_limits() {
    let failed = ServerMsg::LoginFailed {
        reason: LoginFailure::InvalidName,
        limits: LIMITS,
    }
    .to_json();
    assert_eq!(failed["success"], json!(false));
    assert_eq!(failed["reason"], json!("invalid-name"));
    assert!(failed["message"].as_str().unwrap().contains("1 to 20"));
    assert_eq!(
        failed["limits"],
        json!({"name_max_chars": 20, "chat_max_chars": 500})
    );
    let ok = ServerMsg::LoginOk {
        name: "a".into(),
        token: "t".into(),
        ice: None,
        limits: LIMITS,
        room: "lobby".into(),
    }
    .to_json();
    assert!(ok.get("room").is_none(), "the room key stays on the server");
    assert!(ok["iceServers"].is_array());
    assert_eq!(ok["token"], json!("t"));
    assert_eq!(ok["limits"]["chat_max_chars"], json!(500));
    let blocked = ServerMsg::LoginFailed {
        reason: LoginFailure::TooManyAttempts {
            retry_after_secs: 8,
        },
        limits: LIMITS,
    }
    .to_json();
    assert_eq!(blocked["reason"], json!("too-many-attempts"));
    assert_eq!(blocked["retry_after"], json!(8));
}

#[test]
fn tutorial_leave_has_no_payload() {
    let leave = ServerMsg::Tutorial {
        kind: TutorialKind::Leave,
        name: "ann".into(),
        payload: None,
    };
    assert_eq!(
        leave.to_json(),
        json!({"type":"leave","name":"ann","from":"ann"})
    );
}

#[test]
fn frames_serde_json_refuses_are_still_invalid_json() {
    let deep = format!("{}1{}", "[".repeat(127), "]".repeat(127));
    for text in [
        r#"{"type":"candidate","name":"bob","candidate":"\ud800"}"#.to_string(),
        r#"{"type":"offer","name":"bob","offer":{"n":1e400}}"#.into(),
        r#"{"type":"offer","name":"bob"} x"#.into(),
        r#"{"type":"offer","name":"bob",}"#.into(),
        "{\"type\":\"offer\",\"name\":\"b\u{1}ob\"}".into(),
        format!(r#"{{"type":"offer","name":"bob","offer":{deep}}}"#),
    ] {
        assert_eq!(parse(&text), Err(ParseError::InvalidJson), "{text}");
    }
    assert_eq!(parse(" [ ] "), Err(ParseError::NotAnObject));
    assert_eq!(parse("null"), Err(ParseError::NotAnObject));
}

#[test]
fn the_last_of_duplicate_keys_decides_as_in_a_map() {
    let msg = routed(r#"{"type":"login","type":"call-request","target":"a","target":"bob"}"#);
    assert!(matches!(
        msg,
        Routed::Call { kind: CallKind::CallRequest, target: Some(ref t), .. } if t == "bob"
    ));
    assert_eq!(
        parse(r#"{"type":"call-request","type":7}"#),
        Err(ParseError::MissingType)
    );
    assert_eq!(
        parse(r#"{"type":"call-request","target":"bob","target":null}"#)
            .unwrap_err()
            .code(),
        ErrorCode::MissingTarget
    );
    let Ok(Inbound::Login(login)) = parse(r#"{"type":"login","name":"a","n\u0061me":"Ann"}"#)
    else {
        panic!("login")
    };
    assert_eq!(login.name, "Ann", "keys are compared decoded");
}

#[test]
fn a_frame_at_the_size_limit_is_relayed_whole() {
    let sdp = "a=x\\r\\n".repeat(60 * 1024 / 7);
    let text = format!(r#"{{"type":"video-offer","target":"bob","sdp":{{"sdp":"{sdp}"}}}}"#);
    let Routed::Call { body, .. } = routed(&text) else {
        panic!("call")
    };
    let out: serde_json::Value =
        serde_json::from_str(body.finish("ann", None).as_str()).expect("json");
    let sent: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(out["sdp"], sent["sdp"]);
}
