import Foundation
import Testing

@testable import ChatServer

/// The hand-written WebSocket frame reader must agree with JSONDecoder on every input: same fields when both
/// accept, and a refusal whenever JSONDecoder refuses.
@Suite struct FrameDecodingTests {
    private func viaDecoder(_ text: String) -> ClientFrame? {
        try? JSONDecoder().decode(ClientFrame.self, from: Data(text.utf8))
    }

    private func same(_ a: ClientFrame?, _ b: ClientFrame?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return a.type == b.type && a.conversationId == b.conversationId && a.since?.value == b.since?.value && a.content == b.content
            && a.threadParentId == b.threadParentId && a.clientMessageId == b.clientMessageId && a.messageId == b.messageId
    }

    @Test func agreesWithJSONDecoder() {
        let frames = [
            #"{"type":"new_message","conversationId":"cnv_1","content":"hello","clientMessageId":"c-1"}"#,
            #" { "type" : "join_room" , "conversationId" : "cnv_1" , "since" : "42" } "#,
            #"{"type":"join_room","conversationId":"cnv_1","since":42}"#,
            #"{"type":"join_room","conversationId":"cnv_1","since":-3}"#,
            #"{"type":"join_room","conversationId":"cnv_1","since":4.5}"#,
            #"{"type":"join_room","conversationId":"cnv_1","since":1e3}"#,
            #"{"type":"join_room","conversationId":"cnv_1","since":null}"#,
            #"{"type":"new_message","content":"quote \" backslash \\ slash \/ tab \t nl \n uni \u00e9 \ud83d\ude00 ctl \u0001"}"#,
            #"{"type":"new_message","content":"lone \ud83d surrogate"}"#,
            #"{"type":"new_message","content":"bad \x escape"}"#,
            "{\"type\":\"new_message\",\"content\":\"raw \u{01} control\"}",
            #"{"type":"new_message","content":"émoji 😀 ok"}"#,
            #"{"type":"new_message","content":5}"#,
            #"{"type":"new_message","content":null,"conversationId":"cnv_1"}"#,
            #"{"type":"typing","conversationId":"cnv_1","extra":{"nested":[1,2,{"a":true}]}}"#,
            #"{"type":"typing","conversationId":"cnv_1","flag":true,"n":-0.5e-7}"#,
            #"{"type":"typing","type":"new_message"}"#,
            #"{"type":null}"#,
            #"{"conversationId":"cnv_1"}"#,
            #"{}"#, #"[]"#, #""x""#, "", "{", #"{"type":"a",}"#, #"{"type":"a"} x"#, #"{"type":"a" "b":"c"}"#,
            #"{"type":"a","n":012}"#, #"{"type":"a","n":-}"#, #"{"type":"a","t":tru}"#, #"{'type':'a'}"#,
        ]
        for text in frames {
            let fast = try? ClientFrame.decode(text)
            #expect(same(fast, viaDecoder(text)), "\(text)")
        }
    }

    @Test func flatObjectsAreReadWithoutTheDecoder() {
        #expect(FlatJSON.parse(#"{"type":"new_message","content":"a\nb","n":12,"ok":false,"x":null}"#) == [
            "type": .string("new_message"), "content": .string("a\nb"), "n": .number("12"), "ok": .bool(false), "x": .null,
        ])
        #expect(FlatJSON.parse(#"{"a":{"b":1}}"#) == nil)
        #expect(FlatJSON.parse(#"{"a":1,"a":2}"#) == nil)
    }
}

@Suite struct HeaderParsingTests {
    @Test func bearerTokens() {
        #expect(AuthMiddleware.bearerToken("Bearer abc") == "abc")
        #expect(AuthMiddleware.bearerToken("bearer   abc  ") == "abc")
        #expect(AuthMiddleware.bearerToken("  BEARER abc") == "abc")
        #expect(AuthMiddleware.bearerToken("Bearer") == nil)
        #expect(AuthMiddleware.bearerToken("Bearer    ") == nil)
        #expect(AuthMiddleware.bearerToken("Bearerabc") == nil)
        #expect(AuthMiddleware.bearerToken("Basic abc") == nil)
        #expect(AuthMiddleware.bearerToken("Bearor abc") == nil)
        #expect(AuthMiddleware.bearerToken("") == nil)
        #expect(AuthMiddleware.bearerToken("Bearer é✓") == "é✓")
    }

    @Test func acceptEncoding() {
        for yes in ["gzip", "gzip, deflate, br", " deflate ,GZIP ", "gzip;q=0.5", "*", "br, *;q=1", "gzip ; q=1.0"] {
            #expect(RealtimeController.acceptsGzip(yes), "\(yes)")
        }
        for no in ["", "identity", "deflate, br", "gzip;q=0", "gzip; q = 0", "gzip;q=0.000", "*;q=0", "gzip;q=0, *", "gzipx"] {
            #expect(!RealtimeController.acceptsGzip(no), "\(no)")
        }
    }
}
