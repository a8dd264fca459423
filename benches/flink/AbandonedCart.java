/*
 * The Apache Flink DataStream peer of kairos' abandoned-cart benchmark
 * (benches/cart-only.toml): "Product Added not followed by Order Completed
 * within 30m", per cart, T = 30 min, allowed lateness 5 s, one decision per
 * fire, no delivery policy.
 *
 * It exists to answer two questions on the same machine and the same input:
 * how long Flink takes and how much memory it needs, and whether it makes
 * exactly the decisions kairos makes. The second question shapes the code.
 * A textbook KeyedProcessFunction applies events in arrival order and fires
 * a deadline when the watermark passes it; kairos applies events in
 * event-time order (a reorder buffer in front of the engine) and fires a
 * deadline at t after every event at or before t and before any later one.
 * The two differ whenever an event arrives before the watermark has passed
 * an earlier deadline: an add 4 s after a cart's deadline restarts the cart
 * instead of following its reminder; an order that arrives after an add but
 * carries an older timestamp cancels it. Flink emits watermarks every
 * 200 ms of wall time, minutes of event time behind a fast file read: such
 * a textbook job, run once on cart-2M, missed 81,316 of kairos' 769,118
 * reminders and made 80 that kairos did not (and its result depends on
 * timing). This job instead holds each
 * customer's events until an event-time timer at or after their time runs,
 * and applies them in (event time, input line) order first: the decisions
 * are kairos' and do not depend on when watermarks are emitted, as long as
 * no event is late.
 *
 * Not modelled, because cart-only.toml or the generated input never needs
 * them: identity merges (identify/alias linking anonymousId and userId),
 * messageId de-duplication, "Erasure Requested", Product Removed emptying a
 * cart (cancel_when_cart_empty is off). Late events (none in the generated
 * input) are applied at once as in kairos, but whether an event is late
 * depends on Flink's periodic watermark, so only on-time input is
 * guaranteed to give kairos' decisions.
 *
 * Usage: AbandonedCart EVENTS.jsonl OUT.jsonl [PARALLELISM]
 * (see run.sh, which builds the classpath from the Flink 1.20.1 jars).
 */

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichFlatMapFunction;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.reader.TextLineInputFormat;
import org.apache.flink.core.fs.Path;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

public class AbandonedCart {

    /** `after = "30m"` in benches/cart-only.toml. */
    static final long AFTER_MS = 30 * 60 * 1000L;
    /** `allowed_lateness = "5s"`. */
    static final long LATENESS_MS = 5_000L;
    /** kairos' `settings.max_keys_per_trigger` default: carts per customer. */
    static final int MAX_CARTS_PER_CUSTOMER = 16;
    /** kairos' key for an event without the key property. */
    static final String DEFAULT_CART = "default";

    public static void main(String[] args) throws Exception {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: AbandonedCart EVENTS.jsonl OUT.jsonl [PARALLELISM]");
            System.exit(2);
        }
        long mainStarted = System.currentTimeMillis();
        String events = args[0];
        String out = args[1];
        int parallelism = args.length == 3 ? Integer.parseInt(args[2]) : 1;

        // getExecutionEnvironment() in a plain `java` main is a local
        // MiniCluster in this JVM: no cluster to install or warm up.
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(parallelism);
        // STREAMING even though the file is bounded: watermarks and event-time
        // timers then behave as in production, and the end of the file sends
        // the final Long.MAX_VALUE watermark that fires every pending timer —
        // kairos' "run the clock to the end of time" at the end of input.
        env.setRuntimeMode(RuntimeExecutionMode.STREAMING);
        // Chained operators hand records over without a defensive copy. Safe
        // here: every function emits a new object and keeps none it was given
        // (the keyed function stores events it received over the network,
        // which Flink always deserialises into fresh objects).
        env.getConfig().enableObjectReuse();

        // One reader: a text file is one split (TextLineInputFormat is not
        // splittable), so a second source subtask would only sit idle.
        FileSource<String> source = FileSource
                .forRecordStreamFormat(new TextLineInputFormat(), new Path(events))
                .build();
        DataStream<Tuple2<Long, String>> lines = env
                .fromSource(source, WatermarkStrategy.noWatermarks(), "events file")
                .setParallelism(1)
                .map(new NumberLines())
                .name("number lines")
                .setParallelism(1);
        // With more than one parser, spread the lines round-robin; each parser
        // still sees its lines in file order, so the bounded out-of-orderness
        // of the file holds per parser and no event becomes late.
        if (parallelism > 1) {
            lines = lines.rebalance();
        }

        DataStream<CartEvent> parsed = lines
                .flatMap(new ParseSegment())
                .name("parse Segment JSON")
                // Watermark = newest event time - 5 s - 1 ms. Flink's watermark W
                // promises "nothing at or before W any more" while kairos'
                // promises "nothing before W", hence the 1 ms: in both, an event
                // at t is on time until one later than t + 5 s has been seen.
                // Assigned before filtering so that every valid call advances
                // time, as in kairos.
                .assignTimestampsAndWatermarks(WatermarkStrategy
                        .<CartEvent>forBoundedOutOfOrderness(java.time.Duration.ofMillis(LATENESS_MS))
                        .withTimestampAssigner((event, previous) -> event.time))
                .name("event time, 5 s out of order")
                .filter(event -> event.kind != CartEvent.OTHER)
                .name("adds and orders");

        // Keyed by customer, not by cart: kairos keeps carts inside the
        // customer's state, an order without cart_id closes all of the
        // customer's carts, and at most 16 carts per customer are tracked.
        // (In the generated data cart ids are unique across customers, so
        // keying by cart would give the same decisions for that input.)
        parsed.keyBy(event -> event.userId, Types.STRING)
                .process(new AbandonedCartFunction())
                .name("abandoned cart")
                .sinkTo(new JsonLinesSink(out))
                .name("decisions file")
                // One writer, one output file; ~0.4 decisions per event.
                .setParallelism(1);

        long submitted = System.currentTimeMillis();
        JobExecutionResult result = env.execute("kairos abandoned-cart peer");
        long finished = System.currentTimeMillis();
        long jvmStarted = ManagementFactory.getRuntimeMXBean().getStartTime();
        Map<String, Object> counters = result.getAllAccumulatorResults();
        System.err.printf(
                "flink: parallelism %d; lines %s, rejected %s, adds %s, orders %s, late %s, evicted carts %s, decisions %s%n",
                parallelism, counters.get("lines"), counters.get("rejected"), counters.get("adds"),
                counters.get("orders"), counters.get("late"), counters.get("evicted"),
                counters.get("decisions"));
        System.err.printf(
                "flink: JVM start to main() %d ms, main() to job submission %d ms, job net runtime %d ms, execute() returned after %d ms%n",
                mainStarted - jvmStarted, submitted - mainStarted, result.getNetRuntime(),
                finished - submitted);
    }

    // ----- records -------------------------------------------------------

    /** One Segment call, reduced to what the trigger needs. A Flink POJO. */
    public static class CartEvent {
        public static final byte OTHER = 0;
        public static final byte ADD = 1;
        public static final byte ORDER = 2;

        public byte kind;
        public String userId;
        /** null: the call had no cart_id (an add then means "default"). */
        public String cartId;
        /** Event time, epoch milliseconds. */
        public long time;
        /** Line number in the input: kairos' arrival order for equal times. */
        public long seq;

        public CartEvent() {}
    }

    /** A pending reminder for one cart of one customer. A Flink POJO. */
    public static class PendingCart {
        /** Last add + 30 min. */
        public long fireAt;
        /** (time, seq) of the add that created the cart's state: its age for eviction. */
        public long createdTime;
        public long createdSeq;

        public PendingCart() {}

        boolean olderThan(PendingCart other) {
            return createdTime != other.createdTime
                    ? createdTime < other.createdTime
                    : createdSeq < other.createdSeq;
        }
    }

    /** One decision, written as a JSON line. */
    public static class Decision {
        public String userId;
        public String cartId;
        public long firedAt;

        public Decision() {}

        Decision(String userId, String cartId, long firedAt) {
            this.userId = userId;
            this.cartId = cartId;
            this.firedAt = firedAt;
        }
    }

    // ----- input ---------------------------------------------------------

    /** Numbers lines in file order (runs with parallelism 1, so the count is global). */
    public static class NumberLines extends RichMapFunction<String, Tuple2<Long, String>> {
        private long next;

        @Override
        public Tuple2<Long, String> map(String line) {
            return Tuple2.of(next++, line);
        }
    }

    /**
     * Segment JSON to CartEvent, with Jackson's streaming parser (shaded in
     * flink-dist): a real JSON parser, so field order, escapes and nesting do
     * not matter, without building a tree per line. The rules are kairos'
     * (kairos-model Event::from_json) for the fields that matter here:
     * userId else anonymousId (empty = absent); timestamp (else
     * originalTimestamp), corrected to receivedAt - (sentAt - timestamp) when
     * both are present, else receivedAt; cart_id rendered as text when it is a
     * string, number or boolean. Calls kairos would reject are counted and
     * skipped.
     */
    public static class ParseSegment extends RichFlatMapFunction<Tuple2<Long, String>, CartEvent> {
        private static final java.util.Set<String> KNOWN_TYPES =
                java.util.Set.of("track", "identify", "page", "screen", "group", "alias");
        private transient JsonFactory json;
        private final LongCounter lines = new LongCounter();
        private final LongCounter rejected = new LongCounter();

        @Override
        public void open(OpenContext context) {
            json = new JsonFactory();
            getRuntimeContext().addAccumulator("lines", lines);
            getRuntimeContext().addAccumulator("rejected", rejected);
        }

        @Override
        public void flatMap(Tuple2<Long, String> line, Collector<CartEvent> out) {
            lines.add(1);
            if (line.f1.isBlank()) {
                return; // kairos skips blank lines silently
            }
            try {
                CartEvent event = parse(line.f1);
                if (event == null) {
                    rejected.add(1);
                    return;
                }
                event.seq = line.f0;
                out.collect(event);
            } catch (IOException | RuntimeException e) {
                rejected.add(1);
            }
        }

        private CartEvent parse(String text) throws IOException {
            String type = null, name = null, userId = null, anonymousId = null, cartId = null;
            String timestamp = null, originalTimestamp = null, sentAt = null, receivedAt = null;
            try (JsonParser p = json.createParser(text)) {
                if (p.nextToken() != JsonToken.START_OBJECT) {
                    return null;
                }
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String field = p.getCurrentName();
                    JsonToken value = p.nextToken();
                    switch (field) {
                        case "type": type = textOrNull(p, value); break;
                        case "event": name = textOrNull(p, value); break;
                        case "userId": userId = textOrNull(p, value); break;
                        case "anonymousId": anonymousId = textOrNull(p, value); break;
                        case "timestamp": timestamp = textOrNull(p, value); break;
                        case "originalTimestamp": originalTimestamp = textOrNull(p, value); break;
                        case "sentAt": sentAt = textOrNull(p, value); break;
                        case "receivedAt": receivedAt = textOrNull(p, value); break;
                        case "properties":
                            if (value == JsonToken.START_OBJECT) {
                                cartId = cartIdOf(p);
                            } else {
                                p.skipChildren();
                            }
                            break;
                        default:
                            p.skipChildren();
                    }
                }
            }
            if (userId == null || userId.isEmpty()) {
                userId = anonymousId;
            }
            if (userId == null || userId.isEmpty() || type == null || !KNOWN_TYPES.contains(type)) {
                return null;
            }
            if (timestamp == null) {
                timestamp = originalTimestamp;
            }
            long time;
            if (timestamp != null && sentAt != null && receivedAt != null) {
                time = Rfc3339.parse(receivedAt) - (Rfc3339.parse(sentAt) - Rfc3339.parse(timestamp));
            } else if (timestamp != null) {
                time = Rfc3339.parse(timestamp);
            } else if (receivedAt != null) {
                time = Rfc3339.parse(receivedAt);
            } else {
                return null;
            }
            CartEvent event = new CartEvent();
            event.userId = userId;
            event.time = time;
            event.kind = CartEvent.OTHER;
            if (type.equals("track")) {
                if (name == null || name.isEmpty()) {
                    return null; // kairos: a track call needs `event`
                }
                if (name.equals("Product Added")) {
                    event.kind = CartEvent.ADD;
                    event.cartId = cartId;
                } else if (name.equals("Order Completed")) {
                    event.kind = CartEvent.ORDER;
                    event.cartId = cartId;
                }
            }
            return event;
        }

        private static String textOrNull(JsonParser p, JsonToken value) throws IOException {
            if (value == JsonToken.VALUE_STRING) {
                return p.getText();
            }
            p.skipChildren();
            return null;
        }

        /** Reads the properties object, returning cart_id as kairos renders it. */
        private static String cartIdOf(JsonParser p) throws IOException {
            String cartId = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.getCurrentName();
                JsonToken value = p.nextToken();
                if (field.equals("cart_id")) {
                    switch (value) {
                        case VALUE_STRING:
                        case VALUE_NUMBER_INT:
                        case VALUE_NUMBER_FLOAT:
                            cartId = p.getText();
                            break;
                        case VALUE_TRUE: cartId = "true"; break;
                        case VALUE_FALSE: cartId = "false"; break;
                        default: cartId = null; p.skipChildren();
                    }
                } else {
                    p.skipChildren();
                }
            }
            return cartId;
        }
    }

    // ----- the trigger ---------------------------------------------------

    /**
     * Per customer: `unapplied` holds the events that have arrived but not
     * yet been applied; `pending` the carts with a reminder due.
     *
     * An event is applied at the first event-time timer at or after its time,
     * together with every other unapplied event up to that timer's time, in
     * (time, line) order. A timer at t therefore first applies everything at
     * or before t and only then fires the reminders due at t: kairos' tie
     * rule (a timer due at t fires only after every event at or before t), so
     * an order at exactly add + 30 min cancels and one at + 30 min + 1 ms does
     * not. Timers run in timestamp order and only once the watermark has
     * passed them, when everything at or before t has arrived, so applying in
     * sorted order here is applying in event-time order, as kairos does.
     *
     * Timers: an add registers only its own deadline (t + 30 min), which is
     * also the latest point at which it must have been applied; an order
     * registers one at its own time, so it waits for the watermark (~5 s)
     * and no longer. That is one timer per event instead of two for an add
     * (one to apply it, one for its deadline): the timer queue is the largest
     * cost of this job.
     *
     * A restarted cart leaves its old deadline registered: when it fires, the
     * cart is no longer due at that instant and nothing happens (cheaper than
     * deleting it; another cart of the customer may share the instant).
     */
    public static class AbandonedCartFunction extends KeyedProcessFunction<String, CartEvent, Decision> {
        private transient ListState<CartEvent> unapplied;
        private transient MapState<String, PendingCart> pending;
        private final LongCounter adds = new LongCounter();
        private final LongCounter orders = new LongCounter();
        private final LongCounter late = new LongCounter();
        private final LongCounter evicted = new LongCounter();
        private final LongCounter decisions = new LongCounter();

        @Override
        public void open(OpenContext context) {
            unapplied = getRuntimeContext().getListState(
                    new ListStateDescriptor<>("unapplied", Types.POJO(CartEvent.class)));
            pending = getRuntimeContext().getMapState(new MapStateDescriptor<>(
                    "pending", Types.STRING, Types.POJO(PendingCart.class)));
            getRuntimeContext().addAccumulator("adds", adds);
            getRuntimeContext().addAccumulator("orders", orders);
            getRuntimeContext().addAccumulator("late", late);
            getRuntimeContext().addAccumulator("evicted", evicted);
            getRuntimeContext().addAccumulator("decisions", decisions);
        }

        @Override
        public void processElement(CartEvent event, Context ctx, Collector<Decision> out) throws Exception {
            long watermark = ctx.timerService().currentWatermark();
            if (event.kind == CartEvent.ADD) {
                ctx.timerService().registerEventTimeTimer(event.time + AFTER_MS);
            }
            if (event.time <= watermark) {
                // Behind the watermark: kairos (late_events = "apply") applies
                // it at once, after what the watermark has released. The
                // generated data has none (jitter < 2 s < 5 s); see the counter.
                late.add(1);
                applyUpTo(watermark);
                apply(event);
                return;
            }
            unapplied.add(event);
            if (event.kind == CartEvent.ORDER) {
                ctx.timerService().registerEventTimeTimer(event.time);
            }
        }

        @Override
        public void onTimer(long time, OnTimerContext ctx, Collector<Decision> out) throws Exception {
            applyUpTo(time);
            List<String> due = null;
            for (Map.Entry<String, PendingCart> cart : pending.entries()) {
                if (cart.getValue().fireAt == time) {
                    if (due == null) {
                        due = new ArrayList<>(1);
                    }
                    due.add(cart.getKey());
                }
            }
            if (due != null) {
                String userId = ctx.getCurrentKey();
                for (String cartId : due) {
                    pending.remove(cartId);
                    decisions.add(1);
                    out.collect(new Decision(userId, cartId, time));
                }
            }
        }

        /** Applies the unapplied events at or before `time`, in (time, line) order. */
        private void applyUpTo(long time) throws Exception {
            Iterable<CartEvent> held = unapplied.get();
            if (held == null) {
                return;
            }
            List<CartEvent> now = new ArrayList<>(2);
            List<CartEvent> later = new ArrayList<>(2);
            for (CartEvent event : held) {
                (event.time <= time ? now : later).add(event);
            }
            if (now.isEmpty()) {
                return;
            }
            // Line order breaks ties: with parallel parsers, lines of one
            // customer can arrive out of file order.
            now.sort((a, b) -> a.time != b.time ? Long.compare(a.time, b.time) : Long.compare(a.seq, b.seq));
            for (CartEvent event : now) {
                apply(event);
            }
            unapplied.update(later);
        }

        private void apply(CartEvent event) throws Exception {
            if (event.kind == CartEvent.ORDER) {
                orders.add(1);
                if (event.cartId == null) {
                    pending.clear(); // no cart_id: kairos cancels all the customer's carts
                } else {
                    pending.remove(event.cartId);
                }
                return;
            }
            adds.add(1);
            String cartId = event.cartId == null ? DEFAULT_CART : event.cartId;
            PendingCart cart = pending.get(cartId);
            if (cart == null) {
                evictOldestIfFull();
                cart = new PendingCart();
                cart.createdTime = event.time;
                cart.createdSeq = event.seq;
            }
            // Each add restarts T from its own time (events apply in time
            // order, so this never moves a reminder earlier). Its timer was
            // registered when it arrived.
            cart.fireAt = event.time + AFTER_MS;
            pending.put(cartId, cart);
        }

        /**
         * kairos tracks at most 16 keys per trigger and customer; a new one
         * drops the oldest (its reminder never fires). Never reached by the
         * generated data; kept so that the contract is the same.
         */
        private void evictOldestIfFull() throws Exception {
            int count = 0;
            String oldestId = null;
            PendingCart oldest = null;
            for (Map.Entry<String, PendingCart> cart : pending.entries()) {
                count++;
                if (oldest == null || cart.getValue().olderThan(oldest)) {
                    oldest = cart.getValue();
                    oldestId = cart.getKey();
                }
            }
            if (count >= MAX_CARTS_PER_CUSTOMER) {
                pending.remove(oldestId);
                evicted.add(1);
            }
        }
    }

    // ----- output --------------------------------------------------------

    /**
     * Writes decisions as JSON lines to one local file. Not a transactional
     * sink (no checkpoints in a benchmark run); FileSink would write
     * part-files that are committed on checkpoints instead.
     */
    public static class JsonLinesSink implements Sink<Decision> {
        private final String path;

        JsonLinesSink(String path) {
            this.path = path;
        }

        @Override
        @SuppressWarnings("deprecation") // the abstract method Flink 1.20 still requires
        public SinkWriter<Decision> createWriter(InitContext context) throws IOException {
            Writer file = new BufferedWriter(new OutputStreamWriter(
                    Files.newOutputStream(Paths.get(path)), StandardCharsets.UTF_8), 1 << 16);
            return new SinkWriter<Decision>() {
                private final StringBuilder line = new StringBuilder(96);

                @Override
                public void write(Decision d, Context context) throws IOException {
                    line.setLength(0);
                    line.append("{\"user_id\":");
                    Json.string(line, d.userId);
                    line.append(",\"cart_id\":");
                    Json.string(line, d.cartId);
                    line.append(",\"fired_at\":\"");
                    Rfc3339.format(line, d.firedAt);
                    line.append("\"}\n");
                    file.append(line);
                }

                @Override
                public void flush(boolean endOfInput) throws IOException {
                    file.flush();
                }

                @Override
                public void close() throws IOException {
                    file.close();
                }
            };
        }
    }

    static final class Json {
        static void string(StringBuilder out, String s) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': out.append("\\\""); break;
                    case '\\': out.append("\\\\"); break;
                    case '\n': out.append("\\n"); break;
                    case '\r': out.append("\\r"); break;
                    case '\t': out.append("\\t"); break;
                    default:
                        if (c < 0x20) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                }
            }
            out.append('"');
        }
    }

    /**
     * RFC 3339 times in epoch milliseconds. The generator always writes
     * `YYYY-MM-DDTHH:MM:SS.sssZ`; that form is decoded by hand (java.time
     * would cost more than the JSON parsing), anything else by java.time.
     */
    static final class Rfc3339 {
        static long parse(String s) {
            if (s.length() == 24 && s.charAt(4) == '-' && s.charAt(7) == '-' && s.charAt(10) == 'T'
                    && s.charAt(13) == ':' && s.charAt(16) == ':' && s.charAt(19) == '.'
                    && s.charAt(23) == 'Z') {
                int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
                int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
                int milli = digits(s, 20, 3);
                if (year >= 0 && month >= 1 && month <= 12 && day >= 1
                        && (day <= 28 || day <= java.time.YearMonth.of(year, month).lengthOfMonth())
                        && hour >= 0
                        && hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 && second <= 59
                        && milli >= 0) {
                    return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute) * 60_000L
                            + second * 1000L + milli;
                }
            }
            // Other offsets, precisions and separators; sub-millisecond digits are
            // dropped (toEpochMilli floors).
            return OffsetDateTime.parse(s).toInstant().toEpochMilli();
        }

        /** `YYYY-MM-DDTHH:MM:SS.sssZ`, as kairos writes fired_at (years 0-9999). */
        static void format(StringBuilder out, long millis) {
            long days = Math.floorDiv(millis, 86_400_000L);
            long ofDay = millis - days * 86_400_000L;
            // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
            long z = days + 719468;
            long era = Math.floorDiv(z, 146097);
            long doe = z - era * 146097;
            long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
            long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            long mp = (5 * doy + 2) / 153;
            long day = doy - (153 * mp + 2) / 5 + 1;
            long month = mp < 10 ? mp + 3 : mp - 9;
            long year = yoe + era * 400 + (month <= 2 ? 1 : 0);
            pad(out, year, 4).append('-');
            pad(out, month, 2).append('-');
            pad(out, day, 2).append('T');
            pad(out, ofDay / 3_600_000, 2).append(':');
            pad(out, ofDay / 60_000 % 60, 2).append(':');
            pad(out, ofDay / 1000 % 60, 2).append('.');
            pad(out, ofDay % 1000, 3).append('Z');
        }

        private static StringBuilder pad(StringBuilder out, long value, int width) {
            for (long limit = 10; --width > 0; limit *= 10) {
                if (value < limit) {
                    out.append('0');
                }
            }
            return out.append(value);
        }

        /** -1 unless s[from, from+n) is all ASCII digits. */
        private static int digits(String s, int from, int n) {
            int value = 0;
            for (int i = from; i < from + n; i++) {
                char c = s.charAt(i);
                if (c < '0' || c > '9') {
                    return -1;
                }
                value = value * 10 + (c - '0');
            }
            return value;
        }

        /** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
        private static long daysFromCivil(long y, int m, int d) {
            y -= m <= 2 ? 1 : 0;
            long era = Math.floorDiv(y, 400);
            long yoe = y - era * 400;
            long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
            long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            return era * 146097 + doe - 719468;
        }
    }
}
